#!/usr/bin/env bash
# Requests per second: Spindle vs php-fpm + nginx vs Apache mod_php (prefork),
# on this machine, in the same run, several rounds, as ratios.
# Usage: bench/run.sh [--help]. Knobs (environment):
#   WORKERS=2        PHP workers for Spindle and php-fpm (pm = static)
#   DURATION=10      seconds per wrk run
#   ROUNDS=3         rounds; servers are interleaved within each round
#   CONNS="50 2"     wrk connection counts
#   SKIP="apache"    any of: spindle fpm apache
#   SPINDLE_BIN=...  use this binary instead of building target/release/spindle
#   OUT=bench/results/latest.md
set -euo pipefail
if [ "${1:-}" = "--help" ]; then sed -n '2,12p' "$0"; exit 0; fi
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-"50 2"}
OUT=${OUT:-$ROOT/bench/results/latest.md}

install_deps
build_spindle
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
head -c 1024 /dev/zero | tr '\0' 'x' >"$DOC/static.txt"
start_all

RES="$TMP/results"
: >"$RES"
run_wrk() { # name url conns
  local out rps errs
  out=$(wrk -t2 -c"$3" -d"${DURATION}s" "$2" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  [ -n "$errs" ] && log "$1 $2 c=$3: $errs"
  echo "$rps"
}

log "warm-up"
for s in "${SERVERS[@]}"; do wrk -t2 -c10 -d2s "${s#*=}/hello.php" >/dev/null; done
for round in $(seq 1 "$ROUNDS"); do
  for path in hello.php static.txt; do
    for c in $CONNS; do
      for s in "${SERVERS[@]}"; do
        rps=$(run_wrk "${s%%=*}" "${s#*=}/$path" "$c")
        log "round $round ${s%%=*} /$path c=$c: $rps req/s"
        echo "$path $c ${s%%=*} $rps" >>"$RES"
      done
    done
  done
done

mkdir -p "$(dirname "$OUT")"
{
  echo "# Spindle benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs, $WORKERS PHP workers, wrk -t2, ${DURATION}s x $ROUNDS rounds, median req/s."
  echo
  echo "| url | conns | spindle | fpm+nginx | apache | spindle/fpm | spindle/apache |"
  echo "|---|---|---|---|---|---|---|"
  for path in hello.php static.txt; do
    for c in $CONNS; do
      sp=$(awk -v p="$path" -v c="$c" '$1==p && $2==c && $3=="spindle" {print $4}' "$RES" | median)
      fp=$(awk -v p="$path" -v c="$c" '$1==p && $2==c && $3=="fpm+nginx" {print $4}' "$RES" | median)
      ap=$(awk -v p="$path" -v c="$c" '$1==p && $2==c && $3=="apache" {print $4}' "$RES" | median)
      r1=$(awk -v a="$sp" -v b="$fp" 'BEGIN { if (b > 0) printf "%.2fx", a/b; else print "-" }')
      r2=$(awk -v a="$sp" -v b="$ap" 'BEGIN { if (b > 0) printf "%.2fx", a/b; else print "-" }')
      printf '| /%s | %s | %.0f | %.0f | %.0f | %s | %s |\n' "$path" "$c" "$sp" "$fp" "$ap" "$r1" "$r2"
    done
  done
} | tee "$OUT"
