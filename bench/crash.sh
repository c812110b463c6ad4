#!/usr/bin/env bash
# Supervision under load: wrk against hello.php where every 100th request
# hits a script that kills its own worker (SIGKILL). Reports throughput with
# and without crashes, and that the only failed requests are the crashed ones.
# Knobs: WORKERS=2 DURATION=10 ROUNDS=3 CONNS=50 EVERY=100 SPINDLE_BIN=...
set -euo pipefail
if [ "${1:-}" = "--help" ]; then sed -n '2,5p' "$0"; exit 0; fi
source "$(dirname "$0")/lib.sh"
SKIP="fpm apache"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
EVERY=${EVERY:-100}
install_deps
build_spindle
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
echo '<?php posix_kill(getmypid(), SIGKILL);' >"$DOC/crash.php"
cat >"$TMP/crash.lua" <<LUA
local n = 0
request = function()
  n = n + 1
  if n % $EVERY == 0 then return wrk.format("GET", "/crash.php") end
  return wrk.format("GET", "/hello.php")
end
LUA
start_all
base=http://127.0.0.1:$SPINDLE_PORT
for round in $(seq 1 "$ROUNDS"); do
  clean=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$base/hello.php" | awk '/Requests\/sec/ {print $2}')
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$TMP/crash.lua" "$base/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out"); bad=${bad:-0}
  sockerr=$(awk '/Socket errors/ {print}' <<<"$out")
  expected=$((total / EVERY))
  log "round $round: no crashes $clean req/s; crash every $EVERY: $rps req/s, $bad non-2xx of $total (crash requests: ~$expected) $sockerr"
  echo "$clean $rps $bad $total $expected" >>"$TMP/res"
done
awk -v every="$EVERY" '{c+=$1; r+=$2; b+=$3; t+=$4; e+=$5} END {
  printf "| crash every | req/s without crashes | req/s with crashes | ratio | failed requests | crash requests | error rate |\n|---|---|---|---|---|---|---|\n";
  printf "| %d | %.0f | %.0f | %.2f | %d | %d | %.3f%% |\n", every, c/NR, r/NR, r/c, b, e, 100*b/t }' "$TMP/res"
echo "workers replaced: $(grep -c 'replacing worker (crash)' "$TMP/spindle.log")"
