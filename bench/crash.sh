#!/usr/bin/env bash
# Supervision under load: wrk against hello.php where every EVERY-th request
# (per wrk thread) hits a script that kills its own worker (SIGKILL). Reports
# throughput with and without crashes, the crash requests sent, the 502s and
# other failed answers counted one by one, and wrk's socket errors.
# Knobs: WORKERS=2 DURATION=10 ROUNDS=3 CONNS=50 EVERY=100 SPINDLE_BIN=...
#        STRICT=0 (1: stop unless every non-crash request got 200, no socket
#        error, and every answered crash request got 502; the smoke run)
set -euo pipefail
if [ "${1:-}" = "--help" ]; then sed -n '2,8p' "$0"; exit 0; fi
source "$(dirname "$0")/lib.sh"
SKIP="fpm apache"
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
EVERY=${EVERY:-100}
STRICT=${STRICT:-0}
install_deps
build_spindle
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
echo '<?php posix_kill(getmypid(), SIGKILL);' >"$DOC/crash.php"
# Counts, per wrk thread, the crash requests sent and the answers by status
# (exact counts, where total / EVERY was an estimate); done() adds the
# threads up and adds wrk's socket errors.
cat >"$TMP/crash.lua" <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n = 0; crashes = 0; ok = 0; bad502 = 0; other = 0 end
function request()
  n = n + 1
  if n % $EVERY == 0 then
    crashes = crashes + 1
    return wrk.format("GET", "/crash.php")
  end
  return wrk.format("GET", "/hello.php")
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 502 then bad502 = bad502 + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local c, o, b, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("crashes"); o = o + t:get("ok"); b = b + t:get("bad502"); x = x + t:get("other")
  end
  local e = summary.errors
  io.write(string.format("COUNTS crash_sent=%d ok=%d r502=%d other=%d sockerr=%d\n",
    c, o, b, x, e.connect + e.read + e.write + e.timeout))
end
LUA
start_all
base=http://127.0.0.1:$SPINDLE_PORT
field() { sed -n "s/.*COUNTS.* $1=\([0-9]*\).*/\1/p" <<<"$2"; }
: >"$TMP/res"
for round in $(seq 1 "$ROUNDS"); do
  clean=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$base/hello.php" | awk '/Requests\/sec/ {print $2}')
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$TMP/crash.lua" "$base/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  sent=$(field crash_sent "$out"); ok=$(field ok "$out"); r502=$(field r502 "$out")
  other=$(field other "$out"); sockerr=$(field sockerr "$out")
  [ -n "$sent" ] && [ -n "$rps" ] && [ -n "$clean" ] || die "round $round: wrk failed: $out"
  log "round $round: no crashes $clean req/s; crash every $EVERY: $rps req/s;" \
    "crash requests sent $sent, answers: $ok x 200, $r502 x 502, $other other; socket errors $sockerr"
  echo "$clean $rps $sent $ok $r502 $other $sockerr" >>"$TMP/res"
  if [ "$STRICT" = 1 ]; then
    # At the end of the run up to CONNS requests are still in flight, so a
    # crash request sent may have no answer; never more 502s than crashes.
    [ "$other" = 0 ] && [ "$sockerr" = 0 ] && [ "$r502" -le "$sent" ] && [ "$r502" -ge $((sent - CONNS)) ] \
      || die "round $round: $sent crash requests, $r502 x 502, $other other failures, $sockerr socket errors"
  fi
done
awk -v every="$EVERY" '{c+=$1; r+=$2; s+=$3; k+=$4; b+=$5; o+=$6; e+=$7} END {
  printf "| crash every | req/s without crashes | req/s with crashes | ratio | crash requests sent | 502 answers | other failed answers | socket errors | 502 rate |\n|---|---|---|---|---|---|---|---|---|\n";
  printf "| %d | %.0f | %.0f | %.2f | %d | %d | %d | %d | %.3f%% |\n", every, c/NR, r/NR, r/c, s, b, o, e, 100*b/(k+b+o) }' "$TMP/res"
echo "workers replaced: $(grep -c 'replacing worker (crash)' "$TMP/spindle.log")"
