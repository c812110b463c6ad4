#!/usr/bin/env bash
# Installs the Debian 12 packages Spindle needs, and only the missing ones.
#   scripts/deps.sh        build and run: PHP embed library, headers, libclang
#   scripts/deps.sh test   also what the test suite drives, including the
#                          peers of tests/bench_smoke.rs (wrk, php-fpm, Apache)
#                          and tests/deploy_docker.rs (docker.io, debootstrap)
set -euo pipefail

# What a server runs with (also the Docker image's runtime stage), plus what
# the build needs.
mapfile -t want < <("$(dirname "$0")/runtime-deps.sh" --list)
want+=(php8.2-dev libclang-dev clang)
if [ "${1:-}" = test ]; then
  want+=(pebble php8.2-cli php-symfony-mercure php-symfony-http-kernel php-symfony-routing php-symfony-runtime php-symfony-framework-bundle php-laravel-framework curl chromium nginx-light wrk php8.2-fpm apache2 libapache2-mod-php8.2 python3 docker.io debootstrap)
  # bench/tls.sh (h2load, a certificate made with openssl).
  want+=(nghttp2-client openssl)
  # The hub's transports (tests/hub_cluster.rs starts its own servers).
  want+=(redis-server postgresql)
  # Debian's packaged PHP applications (tests/apps_debian.rs), and the
  # database WordPress and phpMyAdmin need (each test starts its own);
  # the theme is what apt installs with WordPress by default (a Recommends).
  want+=(dokuwiki mediawiki wordpress wordpress-theme-twentytwentythree phpmyadmin mariadb-server)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi
echo "installing: ${missing[*]}" >&2
# The applications' postinst scripts ask debconf whether to configure a web
# server and a database; answer no, the tests configure their own.
if printf '%s\n' "${missing[@]}" | grep -qxE 'phpmyadmin|dokuwiki'; then
  $sudo debconf-set-selections <<'EOF'
phpmyadmin phpmyadmin/dbconfig-install boolean false
phpmyadmin phpmyadmin/reconfigure-webserver multiselect
dokuwiki dokuwiki/system/configure-webserver multiselect
dokuwiki dokuwiki/system/restart-webserver boolean false
EOF
fi
# Without systemd as PID 1, postinst scripts start services through
# invoke-rc.d and the init scripts (mariadb on port 3306, apache2 on 80).
# The tests start private servers; keep the system's stopped while
# installing, unless a policy is already in place (Docker images ship one).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod 755 /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
# Another apt-get may hold dpkg's lock (a parallel run); wait for it.
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
