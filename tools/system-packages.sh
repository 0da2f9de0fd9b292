#!/bin/sh
# What `make test` needs from the system that pip and npm do not bring, as Debian packages.
# As root: installs the missing ones with apt-get. Otherwise: one line naming them, exit 1.
# Each package is known by a file it installs (or the command of that name on PATH).
# SYSROOT (empty by default) is where those files are looked for: tests/test_production_kit.py
# points it at a directory of its own to see both branches on a machine that has everything.
set -eu

# package            the file that shows it is there
PACKAGES='
chromium             /usr/bin/chromium
fonts-noto-core      /usr/share/fonts/truetype/noto/NotoSans-Regular.ttf
nginx                /usr/sbin/nginx
coturn               /usr/bin/turnserver
systemd              /usr/bin/systemd-analyze
sqlite3              /usr/bin/sqlite3
nodejs               /usr/bin/node
npm                  /usr/bin/npm
slapd                /usr/sbin/slapd
ldap-utils           /usr/bin/ldapsearch
'

have() {
  if [ -n "${SYSROOT:-}" ]; then
    test -e "$SYSROOT$1"
  else
    test -e "$1" || command -v "$(basename "$1")" >/dev/null 2>&1
  fi
}

missing=
while read -r package file; do
  [ -n "$package" ] || continue
  have "$file" || missing="$missing $package"
done <<LIST
$PACKAGES
LIST
missing=${missing# }
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "make setup: missing system packages; as root run: apt-get install -y $missing" >&2
  exit 1
fi
echo "make setup: installing $missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq $missing >/dev/null
# Debian enables (and on a systemd machine starts) the system nginx, coturn and slapd on
# install; the tests run their own on ports of their own, so the ones installed here are turned
# off. slapd's package asks no questions with DEBIAN_FRONTEND=noninteractive (a placeholder
# directory the tests never use).
for service in nginx coturn slapd; do
  case " $missing " in
    *" $service "*) systemctl disable --now "$service" >/dev/null 2>&1 || true ;;
  esac
done
