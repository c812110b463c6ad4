#!/usr/bin/env bash
# Requests per second and latency: Spindle vs php-fpm + nginx vs Apache
# mod_php (prefork), on this machine, in the same run, several rounds, as
# ratios. Scenarios: /hello.php and /static.txt (1 KiB) x each of CONNS.
# Usage: bench/run.sh [--help]   (as root on Debian 12; installs what it needs)
# Knobs (environment):
#   WORKERS=2        PHP workers for Spindle and php-fpm (pm = static)
#   DURATION=10      seconds per wrk run
#   ROUNDS=3         rounds; servers are interleaved within each round
#   CONNS="50 2"     wrk connection counts
#   THREADS=2        wrk threads (at most the connection count)
#   WARMUP=2         seconds of unrecorded warm-up per server and url
#   SKIP="apache"    servers to leave out, any of: spindle fpm apache
#   SPINDLE_BIN=...  use this binary instead of `cargo build --release`
#   SPINDLE_ARGS=... extra flags for `spindle serve`
#   APACHE_PROCS=64  Apache prefork processes (default: max(64, largest CONNS))
#   OUT=bench/results/latest.md   where the markdown results go
#   STRICT=0         1: stop at the first run with a non-2xx answer or a
#                    socket error (the smoke run in tests/bench_smoke.rs)
# A run with non-2xx answers or socket errors is left out of the medians;
# cells with such runs left out are marked. No OPcache in a server: stop.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,21p' "$0" | cut -c3-; exit 0; fi
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"50 2"}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
OUT=${OUT:-$ROOT/bench/results/latest.md}
STRICT=${STRICT:-0}
PATHS="hello.php static.txt"

install_deps
build_spindle
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
# 1 KiB of text, 16 lines of 64 bytes.
for _ in $(seq 1 16); do printf '%063d\n' 0 | tr 0 x; done >"$DOC/static.txt"
# Reports whether OPcache is active in the server's PHP (not measured).
echo '<?php $s = function_exists("opcache_get_status") ? opcache_get_status(false) : false;
echo ($s && $s["opcache_enabled"]) ? "on" : "off";' >"$DOC/opcache.php"
start_all
for s in "${SERVERS[@]}"; do
  [ "$(curl -s "${s#*=}/static.txt")" = "$(cat "$DOC/static.txt")" ] || die "${s%%=*} served a wrong /static.txt"
  opcache=$(curl -s "${s#*=}/opcache.php")
  # Without OPcache a server recompiles every script on every request: its
  # numbers would compare a different thing.
  [ "$opcache" = on ] || die "${s%%=*}: OPcache is not on (opcache.php said '$opcache')"
  log "${s%%=*} ready at ${s#*=} (opcache: on)"
done

RES="$TMP/results" # lines: path conns server req/s p50_ms p99_ms
ERRS="$TMP/errors" # lines: round server path conns what
EXCLUDED="$TMP/excluded" # lines: path conns server, one per run left out
: >"$RES"
: >"$ERRS"
: >"$EXCLUDED"

# wrk's latencies come as 812.00us, 1.25ms or 1.02s; prints milliseconds.
to_ms() { awk '{v=$1+0; if ($1 ~ /us$/) v/=1000; else if ($1 ~ /[0-9]s$/) v*=1000; else if ($1 ~ /m$/) v*=60000; printf "%.3f", v}'; }

run_wrk() { # round name base-url path conns
  local t=$THREADS out rps p50 p99 errs
  [ "$5" -lt "$t" ] && t=$5
  run_fg wrk --latency -t"$t" -c"$5" -d"${DURATION}s" "$3/$4" >"$TMP/wrk.out" 2>&1 || true
  out=$(cat "$TMP/wrk.out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  # wrk prints these lines only when something went wrong.
  errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | sed 's/^ *//' | paste -sd';' - || true)
  [ -z "$rps" ] && errs="wrk failed: $(tail -n 2 <<<"$out" | paste -sd' ' -)"
  # A run with errors timed something else (fast error pages, dropped
  # connections): it stays out of the medians and is listed instead.
  if [ -n "$errs" ]; then
    echo "$1 $2 /$4 c=$5: $errs" >>"$ERRS"
    echo "$4 $5 $2" >>"$EXCLUDED"
  else
    echo "$4 $5 $2 $rps $p50 $p99" >>"$RES"
  fi
  log "round $1 $2 /$4 c=$5: ${rps:-?} req/s, p50 ${p50:-?} ms, p99 ${p99:-?} ms${errs:+  [$errs; left out]}"
  [ "$STRICT" = 1 ] && [ -n "$errs" ] && die "$2 /$4 c=$5: $errs"
  return 0
}

log "warm-up ($WARMUP s per server and url, not recorded)"
for s in "${SERVERS[@]}"; do
  for path in $PATHS; do run_fg wrk -t2 -c10 -d"${WARMUP}s" "${s#*=}/$path" >/dev/null 2>&1 || true; done
done
for round in $(seq 1 "$ROUNDS"); do
  for path in $PATHS; do
    for c in $CONNS; do
      for s in "${SERVERS[@]}"; do run_wrk "$round" "${s%%=*}" "${s#*=}" "$path" "$c"; done
    done
  done
done

# Median of column $4 (field) for path $1, conns $2, server $3; "-" if none.
med() {
  awk -v p="$1" -v c="$2" -v s="$3" -v f="$4" '$1==p && $2==c && $3==s {print $f}' "$RES" \
    | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2fx", a/b }'; }
num() { [ "$1" = "-" ] && echo "-" || printf "%.${2:-0}f" "$1"; }
# " *" when runs of path $1, conns $2 were left out (for server $3, or any).
mark() { awk -v p="$1" -v c="$2" -v s="${3:-}" '$1==p && $2==c && (s=="" || $3==s) {n++} END {if (n) printf " *"}' "$EXCLUDED"; }

mkdir -p "$(dirname "$OUT")"
{
  echo "# Spindle benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs ($(uname -r)), $WORKERS PHP workers for Spindle and php-fpm, wrk -t$THREADS (at most conns)," \
    "${DURATION}s x $ROUNDS rounds, median of rounds.${SKIP:+ Skipped: $SKIP.}"
  echo
  echo "Requests/s (higher is better):"
  echo
  echo "| url | conns | spindle | fpm+nginx | apache | spindle/fpm | spindle/apache |"
  echo "|---|---|---|---|---|---|---|"
  for path in $PATHS; do
    for c in $CONNS; do
      sp=$(med "$path" "$c" spindle 4); fp=$(med "$path" "$c" fpm+nginx 4); ap=$(med "$path" "$c" apache 4)
      echo "| /$path | $c | $(num "$sp")$(mark "$path" "$c" spindle) | $(num "$fp")$(mark "$path" "$c" fpm+nginx) | $(num "$ap")$(mark "$path" "$c" apache) | $(ratio "$sp" "$fp")$(mark "$path" "$c") | $(ratio "$sp" "$ap")$(mark "$path" "$c") |"
    done
  done
  echo
  echo "Latency p50 / p99 in ms (lower is better):"
  echo
  echo "| url | conns | spindle | fpm+nginx | apache |"
  echo "|---|---|---|---|---|"
  for path in $PATHS; do
    for c in $CONNS; do
      row="| /$path | $c |"
      for s in spindle fpm+nginx apache; do
        row="$row $(num "$(med "$path" "$c" "$s" 5)" 2) / $(num "$(med "$path" "$c" "$s" 6)" 2) |"
      done
      echo "$row"
    done
  done
  echo
  if [ -s "$ERRS" ]; then
    echo "\\* Runs with failures were left out of these medians:"
    echo
    sed 's/^/- round /' "$ERRS"
  else
    echo "Failures: none (no non-2xx responses, no socket errors)."
  fi
} | tee "$OUT"
log "results written to $OUT"
