# Shared by bench/run.sh and bench/stream.sh: installs the peers and starts
# Spindle, php-fpm + nginx and Apache mod_php (prefork) on free loopback ports,
# each with its own config in a temp dir, all stopped on exit.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKERS=${WORKERS:-2}
SKIP=${SKIP:-}
TMP=$(mktemp -d /tmp/spindle-bench.XXXXXX)
chmod 755 "$TMP"
DOC="$TMP/docroot"
mkdir -p "$DOC"
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  [ -f "$TMP/apache.pid" ] && kill "$(cat "$TMP/apache.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$TMP"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }

install_deps() {
  local want=(wrk nginx-light php8.2-fpm apache2 libapache2-mod-php8.2 curl python3)
  local missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  "$ROOT/scripts/deps.sh"
}

build_spindle() {
  if [ -z "${SPINDLE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release >&2)
    SPINDLE_BIN="$ROOT/target/release/spindle"
  fi
  [ -x "$SPINDLE_BIN" ] || die "no spindle binary at $SPINDLE_BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  return 1
}

start_spindle() {
  SPINDLE_PORT=$(free_port)
  "$SPINDLE_BIN" serve "$DOC" --listen "127.0.0.1:$SPINDLE_PORT" --workers "$WORKERS" \
    --access-log off --request-timeout 0 2>"$TMP/spindle.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$SPINDLE_PORT/hello.php" || die "spindle did not start: $(tail -n 5 "$TMP/spindle.log")"
}

start_fpm_nginx() {
  NGINX_PORT=$(free_port)
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
CONF
  php-fpm8.2 -F -y "$TMP/fpm.conf" 2>>"$TMP/fpm.log" &
  PIDS+=($!)
  mkdir -p "$TMP/nginx"
  cat >"$TMP/nginx.conf" <<CONF
worker_processes auto;
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
    listen 127.0.0.1:$NGINX_PORT;
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
  nginx -c "$TMP/nginx.conf" 2>>"$TMP/nginx-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$NGINX_PORT/hello.php" || die "nginx + php-fpm did not start: $(cat "$TMP"/fpm.log "$TMP"/nginx-error.log | tail -n 5)"
}

start_apache() {
  APACHE_PORT=$(free_port)
  local m=/usr/lib/apache2/modules
  # Prefork serves one keep-alive connection per process, so it gets as many
  # PHP processes as the largest connection count (pre-forked, so none is
  # forked during a run); fewer would leave connections waiting.
  local procs=${APACHE_PROCS:-64}
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
<Directory $DOC>
  Require all granted
</Directory>
<FilesMatch "\.php\$">
  SetHandler application/x-httpd-php
</FilesMatch>
CONF
  APACHE_RUN_DIR=$TMP apache2 -f "$TMP/apache.conf" -DFOREGROUND 2>>"$TMP/apache-error.log" &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$APACHE_PORT/hello.php" || die "apache did not start: $(tail -n 5 "$TMP/apache-error.log")"
}

start_all() {
  skipped spindle || start_spindle
  skipped fpm || start_fpm_nginx
  skipped apache || start_apache
  SERVERS=()
  skipped spindle || SERVERS+=("spindle=http://127.0.0.1:$SPINDLE_PORT")
  skipped fpm || SERVERS+=("fpm+nginx=http://127.0.0.1:$NGINX_PORT")
  skipped apache || SERVERS+=("apache=http://127.0.0.1:$APACHE_PORT")
  for s in "${SERVERS[@]}"; do
    local body
    body=$(curl -s "${s#*=}/hello.php")
    [ "$body" = "Hello, World!" ] || die "${s%%=*} answered '$body' for hello.php"
  done
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
