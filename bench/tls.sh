#!/usr/bin/env bash
# HTTPS (issue 14): Spindle serving TLS itself (--tls-cert/--tls-key, rustls)
# vs nginx with TLS in front of php-fpm, same run, same certificate (made
# here with openssl), same CPUs. /hello.php and /static.txt (1 KiB) over
# HTTP/1.1 (wrk) and HTTP/2 (h2load): requests/s, latency and each server's
# CPU time per request, and Spindle vs nginx paired within each round:
# median [min-max] over rounds.
# Stops unless both servers answer 200 with the same bytes on h1 and h2 and
# negotiate the same TLS version, cipher and key exchange.
# Usage: bench/tls.sh [--help]   (as root on Debian 12; installs what it needs)
# Knobs (environment):
#   WORKERS=2        PHP workers for Spindle and php-fpm (pm = static)
#   DURATION=10      seconds per run
#   ROUNDS=3         rounds; the servers take turns on each scenario
#   CONNS=50         connections (wrk -c, h2load -c)
#   STREAMS=1        h2load: concurrent streams per connection (-m)
#   THREADS=2        client threads (wrk -t, h2load -t; at most CONNS)
#   WARMUP=2         seconds of unrecorded warm-up per server and scenario
#   SERVER_CPUS=0    CPUs for both servers (taskset -c); nginx gets one
#                    worker per CPU in the set
#   CLIENT_CPUS=1    CPUs for wrk and h2load
#   KEY=ec           certificate key: ec (ECDSA P-256) or rsa (RSA 2048)
#   SKIP=""          servers to leave out: spindle or fpm (no ratios then)
#   SPINDLE_BIN=...  use this binary instead of `cargo build --release`
#   SPINDLE_ARGS=... extra flags for `spindle serve`
#   OUT=bench/results/tls.md   where the markdown results go
#   STRICT=0         1: stop at the first run with a non-2xx answer or an
#                    error (the smoke run in tests/bench_smoke.rs)
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,28p' "$0" | cut -c3-; exit 0; fi
source "$(dirname "$0")/lib.sh"
SKIP="$SKIP apache" # Apache is not part of this comparison
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-1}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
KEY=${KEY:-ec}
OUT=${OUT:-$ROOT/bench/results/tls.md}
STRICT=${STRICT:-0}
PATHS="hello.php static.txt"
[ "$THREADS" -gt "$CONNS" ] && THREADS=$CONNS

install_deps
if ! command -v h2load >/dev/null || ! command -v openssl >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "missing h2load or openssl; run as root or install nghttp2-client openssl"
  log "installing nghttp2-client openssl"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends nghttp2-client openssl >&2
fi
build_spindle

# One self-signed certificate for 127.0.0.1, used by both servers.
TLS_CERT="$TMP/cert.pem"
TLS_KEY="$TMP/key.pem"
case "$KEY" in
  ec) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) newkey=(-newkey rsa:2048) ;;
  *) die "KEY=$KEY: ec or rsa" ;;
esac
openssl req -x509 "${newkey[@]}" -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$TLS_KEY" -out "$TLS_CERT" 2>"$TMP/openssl.log" || die "openssl: $(cat "$TMP/openssl.log")"
chmod 644 "$TLS_KEY" # nginx's master reads it as root; readable is fine in a temp dir
NGINX_WORKERS=$(taskset -c "$SERVER_CPUS" nproc)

echo '<?php echo "Hello, World!";' >"$DOC/hello.php"
for _ in $(seq 1 16); do printf '%063d\n' 0 | tr 0 x; done >"$DOC/static.txt"
echo '<?php $s = function_exists("opcache_get_status") ? opcache_get_status(false) : false;
echo ($s && $s["opcache_enabled"]) ? "on" : "off";' >"$DOC/opcache.php"
printf 'Hello, World!' >"$TMP/expected.hello.php"
cp "$DOC/static.txt" "$TMP/expected.static.txt"
start_all

# What a server negotiates with an OpenSSL client (wrk and h2load use
# OpenSSL too): "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519".
negotiated() { # base-url
  local hp=${1#https://} out
  out=$(openssl s_client -connect "$hp" -servername localhost -alpn h2 </dev/null 2>/dev/null | tr -d '\000' || true)
  echo "$(awk '/^New, / {sub(",", "", $2); print $2; exit}' <<<"$out")" \
    "$(awk '/^New, / {print $NF; exit}' <<<"$out")" \
    "$(awk -F': ' '/^Server Temp Key/ {sub(",.*", "", $2); print $2; exit}' <<<"$out")"
}
TLS_SEEN=
for s in "${SERVERS[@]}"; do
  name=${s%%=*} base=${s#*=}
  for path in $PATHS; do
    for v in 1.1 2; do
      got=$(bcurl -s --http$v -o "$TMP/body" -w '%{http_code} %{http_version}' "$base/$path")
      [ "$got" = "200 $v" ] || die "$name /$path over HTTP/$v: got '$got' (status, version), expected '200 $v'"
      cmp -s "$TMP/body" "$TMP/expected.$path" \
        || die "$name /$path over HTTP/$v: wrong body '$(head -c 80 "$TMP/body")'"
    done
  done
  opcache=$(bcurl -s "$base/opcache.php")
  [ "$opcache" = on ] || die "$name: OPcache is not on (opcache.php said '$opcache')"
  tls=$(negotiated "$base")
  [ -n "${tls%% *}" ] || die "$name: no TLS handshake with openssl s_client"
  [ -z "$TLS_SEEN" ] || [ "$tls" = "$TLS_SEEN" ] \
    || die "the servers negotiate different TLS parameters: '$TLS_SEEN' vs $name's '$tls'"
  TLS_SEEN=$tls
  log "$name ready at $base (opcache: on, $tls, h1 and h2 answer 200 with the file's bytes)"
done

RES="$TMP/results" # lines: round path proto server req/s lat1_ms lat2_ms cpu_us/req cpu_%
ERRS="$TMP/errors"
: >"$RES"
: >"$ERRS"

to_ms() { awk '{v=$1+0; if ($1 ~ /us$/) v/=1000; else if ($1 ~ /[0-9]s$/) v*=1000; else if ($1 ~ /m$/) v*=60000; printf "%.3f", v}'; }

client() { run_fg taskset -c "$CLIENT_CPUS" "$@"; }

# wrk over TLS (no ALPN: HTTP/1.1). Sets RPS L1 (p50) L2 (p99) ERR.
run_h1() { # url seconds
  client wrk --latency -t"$THREADS" -c"$CONNS" -d"$2s" "$1" >"$TMP/out" 2>&1 || true
  local out; out=$(cat "$TMP/out")
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  REQS=$(awk '/ requests in / {print $1}' <<<"$out")
  L1=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  L2=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  ERR=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | sed 's/^ *//' | paste -sd';' - || true)
  [ -z "$RPS" ] && ERR="wrk failed: $(tail -n 2 <<<"$out" | paste -sd' ' -)"
  return 0
}

# h2load (ALPN h2). Sets RPS L1 (mean) L2 (max) ERR; checks the protocol.
run_h2() { # url seconds
  client h2load -t"$THREADS" -c"$CONNS" -m"$STREAMS" -D"$2" "$1" >"$TMP/out" 2>&1 || true
  local out ok bad; out=$(cat "$TMP/out")
  RPS=$(awk '/^finished in/ {print $4}' <<<"$out")
  REQS=$(awk '/^requests:/ {print $8}' <<<"$out")
  # "time for request:  min  max  mean  sd  +/- sd"
  L1=$(awk '/^time for request:/ {print $6}' <<<"$out" | to_ms)
  L2=$(awk '/^time for request:/ {print $5}' <<<"$out" | to_ms)
  ok=$(awk '/^requests:/ {print $8}' <<<"$out")
  bad=$(awk '/^requests:/ {print $10+$12+$14}' <<<"$out")
  ERR=
  [ "$(awk '/^Application protocol:/ {print $3}' <<<"$out")" = h2 ] || ERR="not h2"
  [ "${bad:-1}" = 0 ] || ERR="$ERR${ERR:+; }$(grep '^requests:' <<<"$out")"
  grep -q "^status codes: ${ok:-x} 2xx" <<<"$out" || ERR="$ERR${ERR:+; }$(grep '^status codes' <<<"$out")"
  [ -z "$RPS" ] && ERR="h2load failed: $(tail -n 2 <<<"$out" | paste -sd' ' -)"
  [ -n "$RPS" ] && RPS=${RPS%%.*}
  return 0
}

log "warm-up ($WARMUP s per server and scenario, not recorded)"
for s in "${SERVERS[@]}"; do
  for path in $PATHS; do run_h1 "${s#*=}/$path" "$WARMUP"; run_h2 "${s#*=}/$path" "$WARMUP"; done
done
# The process groups of each server: its CPU time is counted per run. With
# the client on other CPUs the client may be the limit (TLS costs it as much
# as the server); the CPU each server spends per request still compares them.
declare -A GROUPS_OF=([spindle]="${SPINDLE_PGID:-}" [fpm+nginx]="${FPM_PGID:-} ${NGINX_PGID:-}")
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))
for round in $(seq 1 "$ROUNDS"); do
  for path in $PATHS; do
    for proto in h1 h2; do
      for s in "${SERVERS[@]}"; do
        name=${s%%=*}
        # shellcheck disable=SC2086 # a list of process groups
        t0=$(group_ticks ${GROUPS_OF[$name]}); n0=$(date +%s%N)
        "run_$proto" "${s#*=}/$path" "$DURATION"
        # shellcheck disable=SC2086
        t1=$(group_ticks ${GROUPS_OF[$name]}); n1=$(date +%s%N)
        read -r cpu_req cpu_pct < <(awk -v t=$((t1 - t0)) -v us="$TICK_US" -v n="${REQS:-0}" -v ns=$((n1 - n0)) \
          'BEGIN {printf "%.1f %.0f\n", (n > 0 ? t * us / n : 0), t * us * 100000 / ns}')
        if [ -n "$ERR" ]; then
          echo "round $round $name /$path $proto: $ERR" >>"$ERRS"
        else
          echo "$round $path $proto $name $RPS $L1 $L2 $cpu_req $cpu_pct" >>"$RES"
        fi
        log "round $round $name /$path $proto: ${RPS:-?} req/s, ${L1:-?} / ${L2:-?} ms, server CPU $cpu_req us/req ($cpu_pct% of a CPU)${ERR:+  [$ERR; left out]}"
        [ "$STRICT" = 1 ] && [ -n "$ERR" ] && die "$name /$path $proto: $ERR"
      done
    done
  done
done

# Median of field $4 for path $1, proto $2, server $3; "-" if none.
med() {
  awk -v p="$1" -v q="$2" -v s="$3" -v f="$4" '$2==p && $3==q && $4==s {print $f}' "$RES" \
    | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
# Spindle vs nginx within each round, field $3 (5: req/s, spindle/nginx;
# 8: CPU per request, nginx/spindle; > 1 favours Spindle): "median [min-max]".
paired() { # path proto field
  awk -v p="$1" -v q="$2" -v f="$3" '$2==p && $3==q {v[$1 " " $4]=$f; r[$1]=1}
    END {for (k in r) if ((k " spindle") in v && (k " fpm+nginx") in v && v[k " fpm+nginx"] > 0 && v[k " spindle"] > 0)
      print (f == 5) ? v[k " spindle"] / v[k " fpm+nginx"] : v[k " fpm+nginx"] / v[k " spindle"]}' "$RES" \
    | sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "-"; exit}
      m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2
      printf "%.2fx [%.2f-%.2f]", m, a[1], a[NR]}'
}
num() { [ "$1" = "-" ] && echo "-" || printf "%.${2:-0}f" "$1"; }

mkdir -p "$(dirname "$OUT")"
{
  echo "# Spindle over TLS vs nginx + php-fpm, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs ($(uname -r)); servers on CPUs $SERVER_CPUS ($NGINX_WORKERS nginx workers), client on CPUs $CLIENT_CPUS;" \
    "$WORKERS PHP workers each; $CONNS connections, $THREADS client threads, h2: $STREAMS stream(s) per connection;" \
    "${DURATION}s x $ROUNDS rounds. TLS: $TLS_SEEN, $KEY certificate; both servers negotiated the same."
  echo
  echo "Requests/s, median of rounds (higher is better), and Spindle/nginx paired within each round, median [min-max]:"
  echo
  echo "| url | protocol | spindle | fpm+nginx | spindle/fpm+nginx |"
  echo "|---|---|---|---|---|"
  for path in $PATHS; do
    for proto in h1 h2; do
      label="HTTP/1.1 (wrk)"; [ "$proto" = h2 ] && label="HTTP/2 (h2load)"
      echo "| /$path | $label | $(num "$(med "$path" $proto spindle 5)") | $(num "$(med "$path" $proto fpm+nginx 5)") | $(paired "$path" $proto 5) |"
    done
  done
  echo
  echo "Latency in ms, median of rounds (lower is better); HTTP/1.1: p50 / p99 (wrk), HTTP/2: mean / max (h2load has no percentiles):"
  echo
  echo "| url | protocol | spindle | fpm+nginx |"
  echo "|---|---|---|---|"
  for path in $PATHS; do
    for proto in h1 h2; do
      row="| /$path | $proto |"
      for s in spindle fpm+nginx; do
        row="$row $(num "$(med "$path" $proto $s 6)" 2) / $(num "$(med "$path" $proto $s 7)" 2) |"
      done
      echo "$row"
    done
  done
  echo
  echo "Server CPU per request in µs (user + system of all the server's processes: Spindle's master and workers;" \
    "nginx and php-fpm), median of rounds (lower is better), the server's CPU use in % of one CPU, and" \
    "fpm+nginx/spindle paired within each round (> 1: Spindle spends less):"
  echo
  echo "| url | protocol | spindle | fpm+nginx | fpm+nginx/spindle |"
  echo "|---|---|---|---|---|"
  for path in $PATHS; do
    for proto in h1 h2; do
      row="| /$path | $proto |"
      for s in spindle fpm+nginx; do
        row="$row $(num "$(med "$path" $proto $s 8)" 1) ($(num "$(med "$path" $proto $s 9)")%) |"
      done
      echo "$row $(paired "$path" $proto 8) |"
    done
  done
  echo
  if [ -s "$ERRS" ]; then
    echo "Runs with failures, left out of the medians and ratios:"
    echo
    sed 's/^/- /' "$ERRS"
  else
    echo "Failures: none (every answer 2xx, no socket or stream errors)."
  fi
} | tee "$OUT"
log "results written to $OUT"
