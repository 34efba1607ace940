#!/bin/sh
# build.sh OUT WORKDIR: build keepalived, VRRP only and linked static, from
# Debian 12's source package, into OUT; write OUT.version for the bundle's
# manifest (keepalived is not Go: it carries no build information).
#
# The source comes through apt's deb-src, with a private apt directory in
# WORKDIR, so the machine's apt setup is left alone. Only the upstream
# (orig) tarball is built: 2.2.7 needs no Debian patch, and the mirror may
# refuse the .debian.tar.xz (apt then exits non-zero), so the tarball is
# checked against the .dsc's sha256 instead of trusting apt's exit code.
set -eu

VERSION=2.2.7 # upstream version; Debian 12 ships 1:2.2.7-1

out=$1
mkdir -p "$2"
work=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

if [ -x "$out" ] && [ -f "$out.version" ] && grep -qx "version=v$VERSION" "$out.version" &&
	"$out" --version 2>&1 | grep -q "^Keepalived v$VERSION "; then
	exit 0 # built already
fi

"$here/../apt-need.sh" gcc libc6-dev make libssl-dev

# A deb-src entry for every Debian deb entry of the machine (same URIs,
# suites, components and Signed-By).
apt="$work/apt"
rm -rf "$apt"
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
: >"$apt/sources.list"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -e "$f" ] || continue
	awk 'BEGIN { RS = ""; ORS = "\n\n" }
	     /(^|\n)Types:[^\n]*deb([ \n]|$)/ && /(^|\n)URIs:[^\n]*debian/ && !/(^|\n)Enabled: *no/ {
	         if (!sub(/^Types:[^\n]*/, "Types: deb-src")) sub(/\nTypes:[^\n]*/, "\nTypes: deb-src")
	         print }' "$f"
done >"$apt/sources.list.d/debian-src.sources"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -e "$f" ] || continue
	sed -n 's/^[[:space:]]*deb[[:space:]]\(.*debian.*\)/deb-src \1/p' "$f"
done >"$apt/sources.list.d/debian-src.list"
if ! grep -q deb-src "$apt/sources.list.d/"*; then
	echo "build.sh: no Debian deb entry in /etc/apt to mirror as deb-src" >&2
	exit 1
fi
aptopts="-q -o Dir::Etc::SourceList=$apt/sources.list -o Dir::Etc::SourceParts=$apt/sources.list.d
	-o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt/cache"
# shellcheck disable=SC2086
apt-get $aptopts update >&2

src="$work/src"
orig="keepalived_$VERSION.orig.tar.gz"
rm -f "$src/$orig" "$src"/keepalived_*.dsc
# shellcheck disable=SC2086
(cd "$src" && apt-get $aptopts source --download-only keepalived >&2) ||
	echo "build.sh: apt-get source failed; checking what it fetched" >&2
dsc=$(ls "$src"/keepalived_*"$VERSION"-*.dsc 2>/dev/null | head -1)
if [ -z "$dsc" ] || [ ! -f "$src/$orig" ]; then
	echo "build.sh: apt did not fetch the .dsc and $orig of keepalived $VERSION" >&2
	exit 1
fi
want=$(awk -v f="$orig" '/^Checksums-Sha256:/ { in_sums = 1; next }
	/^[^ ]/ { in_sums = 0 }
	in_sums && $3 == f { print $1 }' "$dsc")
got=$(sha256sum <"$src/$orig" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$want" != "$got" ]; then
	echo "build.sh: $orig has sha256 $got, $(basename "$dsc") says '$want'" >&2
	exit 1
fi
debian=$(sed -n 's/^Version: *//p' "$dsc")

# tar keeps the timestamps, or make would try to rerun automake.
build="$work/keepalived-$VERSION"
rm -rf "$build"
tar -xzf "$src/$orig" -C "$work"
cd "$build"
# Static glibc warns about getpwnam and friends: users in /etc/passwd still
# resolve. The compiler's output goes to a log, shown when the build fails.
log="$work/build.log"
{
	./configure --prefix=/usr --sysconfdir=/etc \
		--disable-lvs --disable-snmp --disable-dbus --disable-nftables --disable-iptables \
		--disable-systemd --disable-track-process --disable-bfd --disable-json \
		ac_cv_lib_magic_magic_open=no LDFLAGS=-static &&
		make -j"$(nproc)"
} >"$log" 2>&1 || {
	tail -40 "$log" >&2
	echo "build.sh: building keepalived failed; the whole log is $log" >&2
	exit 1
}
strip keepalived/keepalived

if ! ./keepalived/keepalived --version 2>&1 | grep -q "^Keepalived v$VERSION "; then
	echo "build.sh: the built keepalived does not report v$VERSION" >&2
	exit 1
fi
mkdir -p "$(dirname "$out")"
cp keepalived/keepalived "$out.tmp" && mv -f "$out.tmp" "$out"
printf 'module=keepalived (Debian source %s)\nversion=v%s\nsha256-orig=%s\n' "$debian" "$VERSION" "$got" >"$out.version.tmp"
mv -f "$out.version.tmp" "$out.version"
