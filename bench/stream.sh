#!/usr/bin/env bash
# Streaming: Spindle vs php-fpm + nginx (fastcgi_buffering off), same run.
#   events/s  one script flushing N small SSE events as fast as it can
#   MB/s      one large response flushed in 64 KiB chunks
#   latency   flush-to-client p50/p99 of events sent 10 ms apart
# Every answer must be 200 with exactly the expected size, or the run stops.
# Knobs: ROUNDS=3 EVENTS=2000000 MB=512 LAT_EVENTS=300 SPINDLE_BIN=... OUT=bench/results/stream.md
set -euo pipefail
if [ "${1:-}" = "--help" ]; then sed -n '2,8p' "$0"; exit 0; fi
source "$(dirname "$0")/lib.sh"
SKIP="$SKIP apache"
ROUNDS=${ROUNDS:-3}
# 100,000 events take ~0.1 s, inside the noise; 2M take seconds.
EVENTS=${EVENTS:-2000000}
MB=${MB:-512}
LAT_EVENTS=${LAT_EVENTS:-300}
OUT=${OUT:-$ROOT/bench/results/stream.md}

install_deps
build_spindle
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
mkdir -p "$DOC/stream"
# Each script first ends php.ini's output buffers, so that flush() sends on
# php-fpm too (Debian's php.ini sets output_buffering=4096).
cat >"$DOC/stream/events.php" <<'PHP'
<?php
while (ob_get_level()) { ob_end_flush(); }
header('Content-Type: text/event-stream');
$n = (int)$_GET['n'];
for ($i = 0; $i < $n; $i++) { echo "data: $i\n\n"; flush(); }
PHP
cat >"$DOC/stream/big.php" <<'PHP'
<?php
while (ob_get_level()) { ob_end_flush(); }
$chunk = str_repeat('x', 65536);
$n = (int)$_GET['mb'] * 16;
for ($i = 0; $i < $n; $i++) { echo $chunk; flush(); }
PHP
cat >"$DOC/stream/latency.php" <<'PHP'
<?php
while (ob_get_level()) { ob_end_flush(); }
header('Content-Type: text/event-stream');
$n = (int)$_GET['n'];
for ($i = 0; $i < $n; $i++) {
    usleep(10000);
    echo "data: ", sprintf('%.6f', microtime(true)), "\n\n";
    flush();
}
PHP
chmod -R a+rX "$DOC"
start_all

RES="$TMP/results"
: >"$RES"
# The exact size of events.php's answer: "data: $i\n\n" for i < EVENTS.
EVENTS_BYTES=$(awk -v n="$EVENTS" 'BEGIN { t = 0; for (i = 0; i < n; i++) t += 8 + length(i ""); print t }')
for round in $(seq 1 "$ROUNDS"); do
  for s in "${SERVERS[@]}"; do
    name=${s%%=*}; base=${s#*=}
    read -r code t size < <(curl -sN -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$base/stream/events.php?n=$EVENTS")
    # A fast error page would count as a huge events/s: stop instead.
    [ "$code" = 200 ] || die "$name events: HTTP $code"
    [ "$size" = "$EVENTS_BYTES" ] || die "$name events: got $size bytes, expected $EVENTS_BYTES"
    eps=$(awk -v n="$EVENTS" -v t="$t" 'BEGIN {printf "%.0f", n/t}')
    read -r code t size < <(curl -sN -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' "$base/stream/big.php?mb=$MB")
    [ "$code" = 200 ] || die "$name big: HTTP $code"
    [ "$size" = $((MB * 1048576)) ] || die "$name big: got $size bytes, expected $((MB * 1048576))"
    mbs=$(awk -v b="$size" -v t="$t" 'BEGIN {printf "%.1f", b/1048576/t}')
    read -r p50 p99 n < <(python3 "$ROOT/bench/latency.py" "$base/stream/latency.php?n=$LAT_EVENTS")
    [ "$n" = "$LAT_EVENTS" ] || die "$name latency: $n of $LAT_EVENTS events arrived"
    log "round $round $name: $eps events/s, $mbs MB/s, latency p50 $p50 ms p99 $p99 ms ($n events)"
    echo "$name $eps $mbs $p50 $p99" >>"$RES"
  done
done

col() { awk -v s="$1" -v c="$2" '$1==s {print $c}' "$RES" | median; }
mkdir -p "$(dirname "$OUT")"
{
  echo "# Spindle streaming benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs, $WORKERS PHP workers, $ROUNDS rounds, medians. php-fpm behind nginx with fastcgi_buffering off."
  echo "Ratios are Spindle's advantage: >1 is better for Spindle (for latency: fpm's / Spindle's)."
  echo
  echo "| metric | spindle | fpm+nginx | ratio |"
  echo "|---|---|---|---|"
  for m in "events/s 2 up" "MB/s 3 up" "latency p50 ms 4 down" "latency p99 ms 5 down"; do
    set -- $m
    dir=${!#}; c=${*: -2:1}; label=${*:1:$#-2}
    a=$(col spindle "$c"); b=$(col fpm+nginx "$c")
    r=$(awk -v a="$a" -v b="$b" -v d="$dir" 'BEGIN { if (a<=0||b<=0) print "-"; else if (d=="up") printf "%.2fx", a/b; else printf "%.2fx", b/a }')
    echo "| $label | $a | $b | $r |"
  done
} | tee "$OUT"
