#!/usr/bin/env bash
# The hub (issue 11): Spindle's Mercure hub vs nginx + nchan vs the "floor"
# (a one-thread server that only writes each event to every socket), same
# run, same CPUs, N SSE subscribers on one topic, measured by
# bench/hubload (Rust, hyper client). Per server and N: server RSS per
# subscriber (Spindle: the master; nginx: master + workers), one update to
# all (p50, p99 and last delivery of publish-to-delivery), sustained
# deliveries/s. Every subscriber must get every update or the run fails.
# Usage: bench/hub.sh [--help]   (as root on Debian 12; installs what it needs)
# Knobs (environment):
#   SUBS="1000 10000"  subscriber counts
#   RUNS=3             runs; servers interleaved within each run, each
#                      started fresh for every measurement
#   ROUNDS=10          single updates to all per measurement (after a warm-up)
#   DURATION=5         seconds of sustained publishing
#   WINDOW=8           sustained: updates in flight (update k is published
#                      once update k-WINDOW reached every subscriber)
#   SERVER_CPUS=0      CPUs for every server (taskset -c)
#   CLIENT_CPUS=1      CPUs for the load client
#   WORKERS=2          Spindle's PHP workers (idle here: publishes are HTTP)
#   SKIP=""            any of: spindle nchan floor
#   SPINDLE_BIN=...    use this binary instead of `cargo build --release`
#   SPINDLE_ARGS=...   extra flags for `spindle serve`
#   OUT=bench/results/hub.md   where the markdown results go
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,24p' "$0" | cut -c3-; exit 0; fi
source "$(dirname "$0")/lib.sh"
# lib.sh's peers for run.sh are not needed here; nchan is installed below.
SKIP_HUB=$SKIP
SKIP="$SKIP fpm apache"
SUBS=${SUBS:-"1000 10000"}
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-5}
WINDOW=${WINDOW:-8}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
OUT=${OUT:-$ROOT/bench/results/hub.md}
HUB_KEY=hub-bench-secret-0123456789abcdef
hub_skipped() { [[ " $SKIP_HUB " == *" $1 "* ]]; }

# 10,000 subscribers are 10,000 descriptors in the client and in each server.
max=$(( $(echo "$SUBS" | tr ' ' '\n' | sort -n | tail -n 1) + 1000 ))
ulimit -n "$max" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge "$max" ] || die "ulimit -n is $(ulimit -n), need $max for SUBS=\"$SUBS\""

install_deps
if ! hub_skipped nchan; then
  missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    # Debian 12's libnginx-mod-nchan needs the ABI of the `nginx` package
    # (nginx-light and nginx-core are transitional names for it).
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >&2
  fi
fi
hub_skipped spindle && SKIP="$SKIP spindle"
build_spindle
log "building bench/hubload (cargo build --release)"
(cd "$ROOT/bench/hubload" && cargo build --release -q >&2) || die "building bench/hubload failed"
HUBLOAD="$ROOT/bench/hubload/target/release/hubload"
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
chmod -R a+rX "$DOC"

# Each server is started fresh for each measurement (a warm allocator would
# hide the memory that subscribers cost) and stopped after it.
SERVER_PID=
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 -- "-$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# Sets SUB_URL, PUB_URL, RSS_PIDS, KIND for topic $1.
start_floor() {
  setsid taskset -c "$SERVER_CPUS" "$HUBLOAD" floor >"$TMP/floor.port" 2>"$TMP/floor.log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  local port=
  for _ in $(seq 1 50); do port=$(head -n 1 "$TMP/floor.port"); [ -n "$port" ] && break; sleep 0.1; done
  [ -n "$port" ] || die "floor server did not start: $(cat "$TMP/floor.log")"
  KIND=floor; RSS_PIDS=$SERVER_PID
  SUB_URL="http://127.0.0.1:$port/sub"; PUB_URL="http://127.0.0.1:$port/pub"
}

start_nchan() {
  local port workers
  port=$(free_port)
  workers=$(taskset -c "$SERVER_CPUS" nproc)
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nchan.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes $workers;
worker_rlimit_nofile $max;
pid $TMP/nchan.pid;
error_log $TMP/nchan-error.log;
daemon off;
events { worker_connections $max; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location = /hello { return 200 "ok"; }
    location = /pub {
      nchan_publisher;
      nchan_channel_id \$arg_id;
    }
    location = /sub {
      nchan_subscriber eventsource;
      nchan_channel_id \$arg_id;
      nchan_subscriber_first_message newest;
    }
  }
}
CONF
  setsid taskset -c "$SERVER_CPUS" nginx -c "$TMP/nchan.conf" 2>>"$TMP/nchan-error.log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$port/hello" "$SERVER_PID" \
    || die "nginx + nchan did not answer on :$port: $(tail -n 5 "$TMP/nchan-error.log")"
  KIND=nchan
  RSS_PIDS=$(echo "$SERVER_PID" $(pgrep -P "$SERVER_PID") | tr ' ' ',')
  SUB_URL="http://127.0.0.1:$port/sub?id=$1"; PUB_URL="http://127.0.0.1:$port/pub?id=$1"
}

start_hub_spindle() {
  local port
  port=$(free_port)
  # shellcheck disable=SC2086 # SPINDLE_ARGS is a list of extra flags
  setsid taskset -c "$SERVER_CPUS" "$SPINDLE_BIN" serve "$DOC" --listen "127.0.0.1:$port" \
    --workers "$WORKERS" --access-log off --hub --hub-anonymous --hub-publisher-key "$HUB_KEY" \
    ${SPINDLE_ARGS:-} 2>"$TMP/spindle.log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$port/hello.php" "$SERVER_PID" \
    || die "spindle did not answer on :$port: $(tail -n 5 "$TMP/spindle.log")"
  KIND=mercure; RSS_PIDS=$SERVER_PID # the master only: workers hold no subscriber
  SUB_URL="http://127.0.0.1:$port/.well-known/mercure?topic=$1"
  PUB_URL="http://127.0.0.1:$port/.well-known/mercure"
}

# Packets the kernel dropped because a CPU's input backlog was full
# (net.core.netdev_max_backlog): on loopback a burst of 10,000 writes can
# overflow it, and each drop costs a TCP retransmit (a 200 ms+ latency spike
# that is the kernel's, not the server's). Counted per measurement.
loopback_drops() {
  local s=0 _cpu dropped _rest
  while read -r _cpu dropped _rest; do s=$((s + 16#$dropped)); done </proc/net/softnet_stat
  echo "$s"
}

SERVERS=()
hub_skipped floor || SERVERS+=(floor)
hub_skipped nchan || SERVERS+=(nchan)
hub_skipped spindle || SERVERS+=(spindle)
[ ${#SERVERS[@]} -gt 0 ] || die "SKIP=\"$SKIP_HUB\" leaves no server to measure"

RES="$TMP/results"
: >"$RES"
for run in $(seq 1 "$RUNS"); do
  for n in $SUBS; do
    for s in "${SERVERS[@]}"; do
      topic="bench-$run-$n"
      case $s in
        floor) start_floor "$topic" ;;
        nchan) start_nchan "$topic" ;;
        spindle) start_hub_spindle "$topic" ;;
      esac
      sleep 0.5 # let the server's startup settle before its RSS is read
      drops0=$(loopback_drops)
      out=$(taskset -c "$CLIENT_CPUS" "$HUBLOAD" run --kind "$KIND" \
        --sub-url "$SUB_URL" --pub-url "$PUB_URL" --topic "$topic" --jwt-key "$HUB_KEY" \
        -n "$n" --rounds "$ROUNDS" --duration "$DURATION" --window "$WINDOW" \
        --rss-pids "$RSS_PIDS" 2>"$TMP/hubload.log") \
        || die "run $run, $s, $n subscribers: hubload failed: $(tail -n 5 "$TMP/hubload.log")"
      drops=$(( $(loopback_drops) - drops0 ))
      stop_server
      # shellcheck disable=SC2086 # out is key=value words
      declare $out
      log "run $run $s n=$n: ${kib_per_sub} KiB/sub, p50 ${p50_ms} ms, p99 ${p99_worst_ms} ms, last ${last_worst_ms} ms, ${dps} deliveries/s, $drops packets dropped (load $(cut -d' ' -f1 /proc/loadavg))"
      # shellcheck disable=SC2154 # set by declare
      echo "$s $n $kib_per_sub $p50_ms $p99_worst_ms $last_worst_ms $dps $kib_per_sub_idle $run $drops" >>"$RES"
      # Loopback TIME_WAITs from 10,000 closed subscribers: give them a moment.
      sleep 1
    done
  done
done

# Medians and [min-max] over runs; ratios are Spindle's vs nchan's medians.
col() { awk -v s="$1" -v n="$2" -v c="$3" '$1==s && $2==n {print $c}' "$RES"; }
cell() {
  local v
  v=$(col "$1" "$2" "$3")
  [ -n "$v" ] || { echo "-"; return; }
  echo "$(echo "$v" | median) [$(echo "$v" | sort -g | head -n 1)-$(echo "$v" | sort -g | tail -n 1)]"
}
# Spindle vs nchan within each run (the noise of a shared machine moves both
# servers of a run together more than it moves runs): median [min-max].
ratio() { # n, metric column, direction (up: higher is better)
  local r
  r=$(awk -v n="$1" -v c="$2" -v d="$3" '$2==n && $1=="spindle" {a[$9]=$c} $2==n && $1=="nchan" {b[$9]=$c}
    END { for (k in a) if ((k in b) && a[k]>0 && b[k]>0) print (d=="up" ? a[k]/b[k] : b[k]/a[k]) }' "$RES")
  [ -n "$r" ] || { echo "-"; return; }
  printf '%.2fx [%.2f-%.2f]\n' "$(echo "$r" | median)" "$(echo "$r" | sort -g | head -n 1)" "$(echo "$r" | sort -g | tail -n 1)"
}
mkdir -p "$(dirname "$OUT")"
{
  echo "# Spindle hub benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs; servers on CPUs $SERVER_CPUS, load client on CPUs $CLIENT_CPUS; $WORKERS PHP workers;"
  echo "$RUNS runs, medians [min-max]; $ROUNDS single updates per run (p99 and last: the worst round);"
  echo "sustained: $DURATION s, $WINDOW updates in flight. Ratios: Spindle vs nchan within each run, median [min-max],"
  echo ">1 is better for Spindle. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  for n in $SUBS; do
    echo
    echo "## $n subscribers"
    echo
    echo "| metric | spindle | nginx + nchan | floor | ratio |"
    echo "|---|---|---|---|---|"
    for m in "KiB/subscriber, idle 8 down" "KiB/subscriber, after updates 3 down" "one update, p50 ms 4 down" "one update, p99 ms 5 down" \
      "one update, last delivery ms 6 down" "deliveries/s 7 up" "packets dropped by the kernel 10 down"; do
      # shellcheck disable=SC2086
      set -- $m
      dir=${!#}; c=${*: -2:1}; label=${*:1:$#-2}
      echo "| $label | $(cell spindle "$n" "$c") | $(cell nchan "$n" "$c") | $(cell floor "$n" "$c") | $(ratio "$n" "$c" "$dir") |"
    done
  done
} | tee "$OUT"
