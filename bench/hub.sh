#!/usr/bin/env bash
# The hub (issue 11): Spindle's Mercure hub vs nginx + nchan vs the "floor"
# (a one-thread server that only writes each event to every socket), same
# run, same CPUs, N SSE subscribers on one topic, measured by
# bench/hubload (Rust, hyper client). Per server and N: server RSS per
# subscriber (Spindle: the master; nginx: master + workers), one update to
# all (p50, p99 and last delivery of publish-to-delivery), sustained
# deliveries/s. Every subscriber must get every update or the run fails.
# MODE=cluster (issue 12) compares instead one Spindle node with NODES nodes
# sharing a redis-server (--hub-transport), subscribers split evenly over
# the nodes, updates published on the first node only; latencies also per
# node. Usage: bench/hub.sh [--help]   (as root on Debian 12; installs what it needs)
# Knobs (environment):
#   MODE=single        or cluster: servers spindle (one node, in-process),
#                      redis1 (one node through Redis), cluster (NODES nodes)
#   NODES=2            cluster mode: Spindle nodes sharing one Redis
#   SUBS="1000 10000"  subscriber counts (cluster mode: "10000", in all)
#   RUNS=3             runs; servers interleaved within each run, each
#                      started fresh for every measurement
#   ROUNDS=10          single updates to all per measurement (after a warm-up)
#   DURATION=5         seconds of sustained publishing
#   WINDOW=8           sustained: updates in flight (update k is published
#                      once update k-WINDOW reached every subscriber)
#   SERVER_CPUS=0      CPUs for every server, every node and Redis (taskset -c)
#   CLIENT_CPUS=1      CPUs for the load client
#   WORKERS=2          Spindle's PHP workers (idle here: publishes are HTTP)
#   SKIP=""            any of: spindle nchan floor (cluster mode: spindle redis1 cluster)
#   SPINDLE_BIN=...    use this binary instead of `cargo build --release`
#   SPINDLE_ARGS=...   extra flags for `spindle serve`
#   OUT=bench/results/hub.md   where the markdown results go
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,30p' "$0" | cut -c3-; exit 0; fi
source "$(dirname "$0")/lib.sh"
# lib.sh's peers for run.sh are not needed here; nchan is installed below.
SKIP_HUB=$SKIP
SKIP="fpm apache"
hub_skipped() { [[ " $SKIP_HUB " == *" $1 "* ]]; }
MODE=${MODE:-single}
NODES=${NODES:-2}
case $MODE in
  single) SUBS=${SUBS:-"1000 10000"}; SKIP_HUB="$SKIP_HUB redis1 cluster" ;;
  cluster) SUBS=${SUBS:-10000}; SKIP_HUB="$SKIP_HUB nchan floor" ;;
  *) die "MODE=$MODE: expected single or cluster" ;;
esac
[ "$NODES" -ge 1 ] 2>/dev/null || die "NODES=$NODES: expected a count"
# lib.sh's `skipped spindle` (no binary needed) only when no Spindle runs.
hub_skipped spindle && hub_skipped redis1 && hub_skipped cluster && SKIP="$SKIP spindle"
RUNS=${RUNS:-3}
ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-5}
WINDOW=${WINDOW:-8}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
OUT=${OUT:-$ROOT/bench/results/hub.md}
HUB_KEY=hub-bench-secret-0123456789abcdef

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
if [ "$MODE" = cluster ] && ! { hub_skipped redis1 && hub_skipped cluster; }; then
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "missing redis-server; run as root or install it"
    log "installing redis-server"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends redis-server redis-tools >&2
  fi
fi
build_spindle
log "building bench/hubload (cargo build --release)"
(cd "$ROOT/bench/hubload" && cargo build --release -q >&2) || die "building bench/hubload failed"
HUBLOAD="$ROOT/bench/hubload/target/release/hubload"
echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
chmod -R a+rX "$DOC"

# Each server is started fresh for each measurement (a warm allocator would
# hide the memory that subscribers cost) and stopped after it. SERVER_PIDS:
# process group leaders of this measurement (a cluster's nodes, then Redis).
SERVER_PIDS=()
stop_server() {
  local p i
  # Last started first: a cluster's nodes before their Redis.
  for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do
    p=${SERVER_PIDS[$i]}
    kill -TERM -- "-$p" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 -- "-$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  SERVER_PIDS=()
}

# Sets SUB_URLS (one per node), PUB_URL, RSS_PIDS, KIND for topic $1.
start_floor() {
  setsid taskset -c "$SERVER_CPUS" "$HUBLOAD" floor >"$TMP/floor.port" 2>"$TMP/floor.log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); SERVER_PIDS=("$SERVER_PID")
  local port=
  for _ in $(seq 1 50); do port=$(head -n 1 "$TMP/floor.port"); [ -n "$port" ] && break; sleep 0.1; done
  [ -n "$port" ] || die "floor server did not start: $(cat "$TMP/floor.log")"
  KIND=floor; RSS_PIDS=$SERVER_PID
  SUB_URLS=("http://127.0.0.1:$port/sub"); PUB_URL="http://127.0.0.1:$port/pub"
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
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); SERVER_PIDS=("$SERVER_PID")
  wait_http "http://127.0.0.1:$port/hello" "$SERVER_PID" \
    || die "nginx + nchan did not answer on :$port: $(tail -n 5 "$TMP/nchan-error.log")"
  KIND=nchan
  RSS_PIDS=$(echo "$SERVER_PID" $(pgrep -P "$SERVER_PID") | tr ' ' ',')
  SUB_URLS=("http://127.0.0.1:$port/sub?id=$1"); PUB_URL="http://127.0.0.1:$port/pub?id=$1"
}

# One Spindle hub node; extra flags after the topic. Appends to SUB_URLS,
# SERVER_PIDS and RSS_PIDS (masters only: workers hold no subscriber); the
# first node started is the one PUB_URL names.
start_hub_node() {
  local topic=$1 port log
  shift
  port=$(free_port)
  log="$TMP/spindle-${#SERVER_PIDS[@]}.log"
  # shellcheck disable=SC2086 # SPINDLE_ARGS is a list of extra flags
  setsid taskset -c "$SERVER_CPUS" "$SPINDLE_BIN" serve "$DOC" --listen "127.0.0.1:$port" \
    --workers "$WORKERS" --access-log off --hub --hub-anonymous --hub-publisher-key "$HUB_KEY" \
    "$@" ${SPINDLE_ARGS:-} 2>"$log" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); SERVER_PIDS+=("$SERVER_PID")
  wait_http "http://127.0.0.1:$port/hello.php" "$SERVER_PID" \
    || die "spindle did not answer on :$port: $(tail -n 5 "$log")"
  KIND=mercure
  RSS_PIDS=${RSS_PIDS:+$RSS_PIDS,}$SERVER_PID
  SUB_URLS+=("http://127.0.0.1:$port/.well-known/mercure?topic=$topic")
  [ -n "${PUB_URL:-}" ] || PUB_URL="http://127.0.0.1:$port/.well-known/mercure"
}

start_hub_spindle() {
  SUB_URLS=(); RSS_PIDS=; PUB_URL=
  start_hub_node "$1"
}

# A private redis-server (no persistence, as tests/support/engines.rs runs
# it) on a free loopback port, on the servers' CPUs; sets REDIS_URL.
start_redis() {
  local port
  port=$(free_port)
  mkdir -p "$TMP/redis"
  setsid taskset -c "$SERVER_CPUS" redis-server --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID"); SERVER_PIDS+=("$SERVER_PID")
  for _ in $(seq 1 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "redis-server exited: $(tail -n 5 "$TMP/redis.log")"
    sleep 0.1
  done
  [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] \
    || die "redis-server did not answer on :$port"
  REDIS_URL="redis://127.0.0.1:$port/0"
}

# $2 Spindle nodes sharing one Redis; publishes go to the first. Each node
# must report its transport up before subscribers arrive, or the first
# updates would race the node's reader connecting.
start_cluster() {
  local topic=$1 nodes=$2 i admin up
  SUB_URLS=(); RSS_PIDS=; PUB_URL=
  start_redis
  for i in $(seq 1 "$nodes"); do
    admin=$(free_port)
    start_hub_node "$topic" --hub-transport "$REDIS_URL" --admin-listen "127.0.0.1:$admin"
    for _ in $(seq 1 100); do
      up=$(curl -s --max-time 2 "http://127.0.0.1:$admin/metrics" | awk '$1=="spindle_hub_transport_up" {print $2}')
      [ "$up" = 1 ] && break
      sleep 0.1
    done
    [ "$up" = 1 ] || die "node $i: spindle_hub_transport_up is '$up', not 1, after 10 s"
  done
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
if [ "$MODE" = cluster ]; then
  hub_skipped redis1 || SERVERS+=(redis1)
  hub_skipped cluster || SERVERS+=(cluster)
fi
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
        redis1) start_cluster "$topic" 1 ;;
        cluster) start_cluster "$topic" "$NODES" ;;
      esac
      sub_args=()
      for u in "${SUB_URLS[@]}"; do sub_args+=(--sub-url "$u"); done
      sleep 0.5 # let the server's startup settle before its RSS is read
      drops0=$(loopback_drops)
      out=$(taskset -c "$CLIENT_CPUS" "$HUBLOAD" run --kind "$KIND" \
        "${sub_args[@]}" --pub-url "$PUB_URL" --topic "$topic" --jwt-key "$HUB_KEY" \
        -n "$n" --rounds "$ROUNDS" --duration "$DURATION" --window "$WINDOW" \
        --rss-pids "$RSS_PIDS" 2>"$TMP/hubload.log") \
        || die "run $run, $s, $n subscribers: hubload failed: $(tail -n 5 "$TMP/hubload.log")"
      drops=$(( $(loopback_drops) - drops0 ))
      stop_server
      # Per node (cluster mode): hubload prints them only for several nodes.
      pernode=
      for k in $(seq 0 $((NODES - 1))); do
        unset "p50_ms_$k" "p99_worst_ms_$k" "last_worst_ms_$k"
      done
      # shellcheck disable=SC2086 # out is key=value words
      declare $out
      for k in $(seq 0 $((NODES - 1))); do
        v50="p50_ms_$k"; v99="p99_worst_ms_$k"; vl="last_worst_ms_$k"
        pernode="$pernode ${!v50:--} ${!v99:--} ${!vl:--}"
      done
      log "run $run $s n=$n: ${kib_per_sub} KiB/sub, p50 ${p50_ms} ms, p99 ${p99_worst_ms} ms, last ${last_worst_ms} ms, ${dps} deliveries/s, $drops packets dropped (load $(cut -d' ' -f1 /proc/loadavg))"
      # shellcheck disable=SC2154 # set by declare
      echo "$s $n $kib_per_sub $p50_ms $p99_worst_ms $last_worst_ms $dps $kib_per_sub_idle $run $drops$pernode" >>"$RES"
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
# Cluster mode: the cluster (or one node through Redis) against one node
# in-process, within each run; a latency ratio is cluster / single (the
# issue's target: p99 within 2x), a deliveries/s ratio too (< 1: slower).
cratio() { # server, n, metric column[, the single node's column to compare with]
  local r
  r=$(awk -v s="$1" -v n="$2" -v c="$3" -v d="${4:-$3}" '$2==n && $1==s {a[$9]=$c} $2==n && $1=="spindle" {b[$9]=$d}
    END { for (k in a) if ((k in b) && a[k]>0 && b[k]>0) print a[k]/b[k] }' "$RES")
  [ -n "$r" ] || { echo "-"; return; }
  printf '%.2fx [%.2f-%.2f]\n' "$(echo "$r" | median)" "$(echo "$r" | sort -g | head -n 1)" "$(echo "$r" | sort -g | tail -n 1)"
}
cluster_report() {
  local n m k c label node
  echo "$(nproc) CPUs; every server process (Spindle nodes, Redis) on CPUs $SERVER_CPUS, load client on"
  echo "CPUs $CLIENT_CPUS; $WORKERS PHP workers per node; $RUNS runs, medians [min-max]; $ROUNDS single updates"
  echo "per run (p99 and last: the worst round); sustained: $DURATION s, $WINDOW updates in flight."
  echo "spindle: one node, in-process hub; redis1: one node, --hub-transport redis; cluster: $NODES nodes"
  echo "sharing one redis-server, subscribers split evenly, every update published on node A."
  echo "Ratios: cluster / spindle within each run, median [min-max] (latency: < 2x is the target)."
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  for n in $SUBS; do
    echo
    echo "## $n subscribers ($((n / NODES)) per node in the cluster)"
    echo
    echo "| metric | spindle, 1 node | 1 node + Redis | $NODES nodes + Redis | redis1 / spindle | cluster / spindle |"
    echo "|---|---|---|---|---|---|"
    for m in "KiB/subscriber, idle (masters) 8" "one update, p50 ms 4" "one update, p99 ms 5" \
      "one update, last delivery ms 6"; do
      # shellcheck disable=SC2086
      set -- $m
      c=${!#}; label=${*:1:$#-1}
      echo "| $label | $(cell spindle "$n" "$c") | $(cell redis1 "$n" "$c") | $(cell cluster "$n" "$c") | $(cratio redis1 "$n" "$c") | $(cratio cluster "$n" "$c") |"
    done
    for k in $(seq 0 $((NODES - 1))); do
      node=$(printf "\\x$(printf %x $((65 + k)))")
      [ "$k" -eq 0 ] && node="$node (publishes)"
      for m in "p50 0" "p99 1" "last delivery 2"; do
        # shellcheck disable=SC2086
        set -- $m
        c=$((11 + 3 * k + ${!#})); label="node $node, ${*:1:$#-1} ms"
        # Each node's subscribers against all of the single node's.
        echo "| $label | - | - | $(cell cluster "$n" "$c") | - | $(cratio cluster "$n" "$c" $((4 + ${!#}))) |"
      done
    done
    echo "| deliveries/s | $(cell spindle "$n" 7) | $(cell redis1 "$n" 7) | $(cell cluster "$n" 7) | $(cratio redis1 "$n" 7) | $(cratio cluster "$n" 7) |"
    echo "| packets dropped by the kernel | $(cell spindle "$n" 10) | $(cell redis1 "$n" 10) | $(cell cluster "$n" 10) | - | - |"
  done
}
mkdir -p "$(dirname "$OUT")"
if [ "$MODE" = cluster ]; then
  { echo "# Spindle hub cluster benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"; echo; cluster_report; } | tee "$OUT"
  exit 0
fi
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
