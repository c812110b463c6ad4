# Shared by bench/run.sh, bench/stream.sh, bench/crash.sh and bench/tls.sh:
# installs the peers and starts Spindle, php-fpm + nginx and Apache mod_php
# (prefork) on free loopback ports, each with its own config in a temp dir
# (never the system's configs or ports), all stopped on exit.
# Optional, set by the caller before start_all (unset: plain HTTP, no
# pinning, as run.sh has always measured):
#   TLS_CERT, TLS_KEY  serve HTTPS with this pair: Spindle with --tls-cert/
#                      --tls-key, nginx with `listen ... ssl http2`; URLs in
#                      SERVERS are https:// and curl trusts TLS_CERT
#   TLS_PROTOCOLS      nginx's ssl_protocols (default "TLSv1.2 TLSv1.3",
#                      what Spindle's rustls offers)
#   SERVER_CPUS        run every server under `taskset -c SERVER_CPUS`
#   NGINX_WORKERS      nginx's worker_processes (default auto)
#   FPM_POOL_EXTRA     lines added to php-fpm's pool section (env[...])
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=${WORKERS:-2}
SKIP=${SKIP:-}
TMP=$(mktemp -d /tmp/spindle-bench.XXXXXX)
chmod 755 "$TMP" # www-data (FPM and Apache children) must reach the docroot
DOC="$TMP/docroot"
mkdir -p "$DOC"
PIDS=()

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }

# Every server runs under setsid, as the leader of its own process group, so
# that (a) Apache prefork's shutdown, which SIGTERMs its whole process group,
# cannot kill this script, and (b) cleanup can end a server with all its
# children (workers, pool processes) by signalling the group.
cleanup() {
  local p i
  [ -n "${FG_PID:-}" ] && kill "$FG_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do # up to 5 s for graceful exits
    for p in "${PIDS[@]}"; do kill -0 -- "-$p" 2>/dev/null && break; p=; done
    [ -z "${p:-}" ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP # so that the EXIT trap runs on Ctrl-C / kill

# Runs a long command (wrk) in the background and waits for it: bash runs a
# trap only once its foreground command is done, but interrupts `wait`.
run_fg() { "$@" & FG_PID=$!; wait "$FG_PID"; }

# Installs the peers (only what is missing; apt-get update only then).
install_deps() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  if ! skipped fpm; then
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v php-fpm8.2 >/dev/null || missing+=(php8.2-fpm)
  fi
  if ! skipped apache; then
    command -v apache2 >/dev/null || missing+=(apache2)
    [ -f /usr/lib/apache2/modules/libphp8.2.so ] || missing+=(libapache2-mod-php8.2)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root or install them"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >&2
  fi
  # Spindle's build and run-time packages (PHP embed library, headers, clang).
  if ! skipped spindle; then
    if [ -z "${SPINDLE_BIN:-}" ]; then "$ROOT/scripts/deps.sh"; else "$ROOT/scripts/runtime-deps.sh"; fi
  fi
}

build_spindle() {
  skipped spindle && return 0
  if [ -z "${SPINDLE_BIN:-}" ]; then
    log "building spindle (cargo build --release)"
    (cd "$ROOT" && cargo build --release >&2) || die "cargo build --release failed"
    SPINDLE_BIN="$ROOT/target/release/spindle"
  fi
  [ -x "$SPINDLE_BIN" ] || die "no spindle binary at $SPINDLE_BIN"
}

# "https" when the servers serve TLS_CERT, else "http".
scheme() { if [ -n "${TLS_CERT:-}" ]; then echo https; else echo http; fi; }
# curl, trusting TLS_CERT when set (a self-signed certificate for 127.0.0.1).
bcurl() { curl ${TLS_CERT:+--cacert "$TLS_CERT"} "$@"; }
# Sets PIN to the command prefix that pins a server to SERVER_CPUS (if set).
pin() { PIN=(); if [ -n "${SERVER_CPUS:-}" ]; then PIN=(taskset -c "$SERVER_CPUS"); fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url [pid]: up to 15 s for a 2xx answer, less if pid exits
  for _ in $(seq 1 150); do
    bcurl -sf -o /dev/null --max-time 2 "$1" && return 0
    [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}

start_spindle() {
  SPINDLE_PORT=$(free_port)
  local tls=()
  [ -n "${TLS_CERT:-}" ] && tls=(--tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
  pin
  # shellcheck disable=SC2086 # SPINDLE_ARGS is a list of extra flags
  setsid "${PIN[@]}" "$SPINDLE_BIN" serve "$DOC" --listen "127.0.0.1:$SPINDLE_PORT" --workers "$WORKERS" \
    --access-log off --request-timeout 0 "${tls[@]}" ${SPINDLE_ARGS:-} 2>"$TMP/spindle.log" &
  PIDS+=($!); SPINDLE_PGID=$!
  wait_http "$(scheme)://127.0.0.1:$SPINDLE_PORT/hello.php" "$!" \
    || die "spindle did not answer on :$SPINDLE_PORT: $(tail -n 5 "$TMP/spindle.log")"
}

start_fpm_nginx() {
  NGINX_PORT=$(free_port)
  local listen="listen 127.0.0.1:$NGINX_PORT;"
  # The same pair and TLS versions as Spindle; nginx 1.22's syntax for h2.
  [ -n "${TLS_CERT:-}" ] && listen="listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_certificate $TLS_CERT;
    ssl_certificate_key $TLS_KEY;
    ssl_protocols ${TLS_PROTOCOLS:-TLSv1.2 TLSv1.3};"
  pin
  # Root master, www-data children: no -R needed. Debian's fpm php.ini and
  # conf.d apply (OPcache on).
  cat >"$TMP/fpm.conf" <<CONF
[global]
pid = $TMP/fpm.pid
error_log = $TMP/fpm.log
daemonize = no
[www]
user = www-data
group = www-data
listen = $TMP/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = $WORKERS
${FPM_POOL_EXTRA:-}
CONF
  setsid "${PIN[@]}" php-fpm8.2 -F -y "$TMP/fpm.conf" 2>>"$TMP/fpm.log" &
  PIDS+=($!); FPM_PGID=$!
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx.conf" <<CONF
worker_processes ${NGINX_WORKERS:-auto};
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  include /etc/nginx/mime.types;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  proxy_temp_path $TMP/nginx/proxy;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    $listen
    root $DOC;
    location ~ ^/stream/.+\.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$TMP/fpm.sock;
      fastcgi_buffering off;
      fastcgi_read_timeout 600s;
    }
    location ~ \.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$TMP/fpm.sock;
    }
  }
}
CONF
  setsid "${PIN[@]}" nginx -c "$TMP/nginx.conf" 2>>"$TMP/nginx-error.log" &
  PIDS+=($!); NGINX_PGID=$!
  wait_http "$(scheme)://127.0.0.1:$NGINX_PORT/hello.php" "$!" \
    || die "nginx + php-fpm did not answer on :$NGINX_PORT: $(cat "$TMP"/fpm.log "$TMP"/nginx-error.log | tail -n 5)"
}

start_apache() {
  [ -z "${TLS_CERT:-}" ] || die "Apache is not set up for TLS here: SKIP=apache"
  APACHE_PORT=$(free_port)
  local m=/usr/lib/apache2/modules c procs=64
  # Prefork serves one keep-alive connection per process, so Apache gets at
  # least as many (pre-forked, fixed) processes as the largest connection
  # count; fewer would leave connections waiting for a free process.
  for c in ${CONNS:-}; do [ "$c" -gt "$procs" ] && procs=$c; done
  procs=${APACHE_PROCS:-$procs}
  cat >"$TMP/apache.conf" <<CONF
LoadModule mpm_prefork_module $m/mod_mpm_prefork.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule mime_module $m/mod_mime.so
LoadModule dir_module $m/mod_dir.so
LoadModule php_module $m/libphp8.2.so
ServerName localhost
ServerRoot $TMP
PidFile $TMP/apache.pid
ErrorLog $TMP/apache-error.log
Mutex file:$TMP default
Listen 127.0.0.1:$APACHE_PORT
User www-data
Group www-data
TypesConfig /etc/mime.types
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
StartServers $procs
MinSpareServers $procs
MaxSpareServers $procs
ServerLimit $procs
MaxRequestWorkers $procs
MaxConnectionsPerChild 0
DocumentRoot $DOC
DirectoryIndex index.php index.html
<Directory $DOC>
  Require all granted
</Directory>
<FilesMatch "\.php\$">
  SetHandler application/x-httpd-php
</FilesMatch>
CONF
  pin
  APACHE_RUN_DIR=$TMP setsid "${PIN[@]}" apache2 -f "$TMP/apache.conf" -DFOREGROUND 2>>"$TMP/apache-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$APACHE_PORT/hello.php" "$!" \
    || die "apache did not answer on :$APACHE_PORT: $(tail -n 5 "$TMP/apache-error.log")"
}

# Starts the servers not in SKIP; SERVERS gets "name=base-url" entries, in
# the order they are measured. Checks each answers hello.php correctly.
start_all() {
  chmod -R a+rX "$DOC"
  skipped spindle || start_spindle
  skipped fpm || start_fpm_nginx
  skipped apache || start_apache
  SERVERS=()
  skipped spindle || SERVERS+=("spindle=$(scheme)://127.0.0.1:$SPINDLE_PORT")
  skipped fpm || SERVERS+=("fpm+nginx=$(scheme)://127.0.0.1:$NGINX_PORT")
  skipped apache || SERVERS+=("apache=http://127.0.0.1:$APACHE_PORT")
  [ ${#SERVERS[@]} -gt 0 ] || die "SKIP=\"$SKIP\" leaves no server to measure"
  local s body
  for s in "${SERVERS[@]}"; do
    body=$(bcurl -s --max-time 5 "${s#*=}/hello.php")
    [ "$body" = "Hello, World!" ] || die "${s%%=*} answered '$body' for /hello.php, expected 'Hello, World!'"
  done
}

# CPU time (user + system, clock ticks) used so far by the live processes of
# these process groups (each server is one group, or two for fpm + nginx).
group_ticks() { # pgid...
  # A process may end between the glob and cat: not an error.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } \
    | awk -v g=" $* " '{sub(/^.*\) /, ""); if (index(g, " " $3 " ")) t += $12 + $13} END {print t + 0}'
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
