#!/usr/bin/env bash
# The Debian 12 packages a Spindle server needs at run time: the PHP 8.2
# embed library, OPcache and the common extensions. Used by docker/Dockerfile
# (runtime stage) and by scripts/deps.sh, so the test suite runs against the
# very set the image ships.
#   scripts/runtime-deps.sh          install what is missing
#   scripts/runtime-deps.sh --list   print the package names
set -euo pipefail

packages=(
  libphp8.2-embed php8.2-opcache
  php8.2-curl php8.2-intl php8.2-mbstring php8.2-xml php8.2-zip php8.2-gd
  php8.2-mysql php8.2-pgsql php8.2-sqlite3 php8.2-bcmath php8.2-redis
  ca-certificates curl
)

if [ "${1:-}" = --list ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
