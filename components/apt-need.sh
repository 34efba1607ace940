#!/bin/sh
# apt-need.sh PKG...: install the Debian packages a component's build needs,
# only those that are missing, so that `make bundle` works on a fresh
# Debian 12 machine and changes nothing on one that has them.
set -eu

missing=
for pkg in "$@"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" != 0 ]; then
	echo "apt-need.sh: the build needs these Debian packages:$missing; install them as root (apt-get install$missing)" >&2
	exit 1
fi
echo "apt-need.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; a stale one may lack a version.
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing ||
	{ apt-get update -q && apt-get install -y -q --no-install-recommends $missing; }
