#!/usr/bin/env bash
# Worker mode vs classic mode vs php-fpm + nginx, same run: the hello route
# of a Symfony HttpKernel app from Debian's packages (php-tests/symfony/),
# GET /index.php (path info "/"), plus Spindle's plain /hello.php for
# reference, classic and from a bare worker script (the worker-mode path
# without a framework). Requests/s and latency per server, then each Spindle worker's
# RSS after the run (worker mode keeps the app booted: it must not grow).
# Usage: bench/worker.sh [--help]   (as root on Debian 12)
# Knobs (environment):
#   WORKERS=2       PHP workers for every server
#   DURATION=10     seconds per wrk run
#   ROUNDS=3        rounds; servers are interleaved within each round
#   CONNS=50        wrk connections
#   THREADS=2       wrk threads
#   SPINDLE_BIN=... use this binary instead of `cargo build --release`
#   OUT=bench/results/worker.md   where the markdown results go
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,15p' "$0" | cut -c3-; exit 0; fi
source "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
OUT=${OUT:-$ROOT/bench/results/worker.md}
SKIP="apache"

install_deps
[ -f /usr/share/php/Symfony/Component/HttpKernel/autoload.php ] \
  || apt-get install -y --no-install-recommends php-symfony-http-kernel php-symfony-routing >&2
build_spindle
cp "$ROOT"/php-tests/symfony/*.php "$DOC/"
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
cat >"$DOC/bare-worker.php" <<'PHP'
<?php
$hello = static function () { echo "Hello, World!"; };
while (spindle_handle_request($hello)) {}
PHP

# Spindle twice: classic (index.php boots the app per request) and worker
# mode (worker.php boots it once per process).
start_spindle_as() { # name extra-flags...
  local name=$1 port
  shift
  port=$(free_port)
  setsid "$SPINDLE_BIN" serve "$DOC" --listen "127.0.0.1:$port" --workers "$WORKERS" \
    --access-log off --request-timeout 0 "$@" 2>"$TMP/$name.log" &
  PIDS+=($!)
  eval "PID_$name=$!"
  wait_http "http://127.0.0.1:$port/index.php" "$!" \
    || die "$name did not answer on :$port: $(tail -n 5 "$TMP/$name.log")"
  SERVERS+=("$name=http://127.0.0.1:$port")
}
SERVERS=()
start_spindle_as classic
start_spindle_as worker --worker worker.php
start_fpm_nginx
SERVERS+=("fpm+nginx=http://127.0.0.1:$NGINX_PORT")
for s in "${SERVERS[@]}"; do
  [ "$(curl -s "${s#*=}/index.php")" = "Hello, World!" ] || die "${s%%=*}: wrong answer from /index.php"
done
# The bare worker script answers hello for every path; measured on
# /hello.php only, not among the Symfony servers.
start_spindle_as bare --worker bare-worker.php
BARE=${SERVERS[-1]#*=}
unset 'SERVERS[-1]'
[ "$(curl -s "$BARE/hello.php")" = "Hello, World!" ] || die "bare worker: wrong answer"

RES="$TMP/results" # lines: what server req/s p50 p99 non2xx
: >"$RES"
to_ms() { awk '{v=$1+0; if ($1 ~ /us$/) v/=1000; else if ($1 ~ /[0-9]s$/) v*=1000; printf "%.3f", v}'; }
measure() { # label url
  local out rps p50 p99 bad
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "$1 $rps $p50 $p99 ${bad:-0}" >>"$RES"
  log "$1: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, non-2xx ${bad:-0}"
}
for s in "${SERVERS[@]}"; do wrk -t2 -c"$CONNS" -d2s "${s#*=}/index.php" >/dev/null; done
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  for s in "${SERVERS[@]}"; do measure "symfony:${s%%=*}" "${s#*=}/index.php"; done
  measure "hello.php:classic" "${SERVERS[0]#*=}/hello.php"
  measure "hello:bare-worker" "$BARE/hello.php"
done

# Each worker's RSS (kB), after everything above.
rss_of() { # master pid -> "pid:rss ..."
  local p
  for p in $(pgrep -s "$1"); do
    case $(cat "/proc/$p/comm" 2>/dev/null) in
      spindle-w*) echo -n "$(awk '/VmRSS/ {print $2}' "/proc/$p/status")kB " ;;
    esac
  done
}
requests=$(awk -v n="$ROUNDS" 'BEGIN {print n}')
{
  echo "# Worker mode benchmark"
  echo
  echo "$(date -u +%F), $(nproc) CPUs, WORKERS=$WORKERS, CONNS=$CONNS, DURATION=${DURATION}s, ROUNDS=$requests (medians)."
  echo "Symfony HttpKernel 5.4 (Debian) hello route, GET /index.php; plain hello.php on Spindle classic for reference."
  echo
  echo "| what | req/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---|---|"
  for what in $(awk '{print $1}' "$RES" | sort -u); do
    rps=$(awk -v w="$what" '$1==w {print $2}' "$RES" | median)
    p50=$(awk -v w="$what" '$1==w {print $3}' "$RES" | median)
    p99=$(awk -v w="$what" '$1==w {print $4}' "$RES" | median)
    bad=$(awk -v w="$what" '$1==w {s+=$5} END {print s+0}' "$RES")
    echo "| $what | $rps | $p50 | $p99 | $bad |"
  done
  echo
  echo "Worker RSS after the run: classic $(rss_of "$PID_classic"), worker mode $(rss_of "$PID_worker")."
} >"$OUT"
cat "$OUT"
