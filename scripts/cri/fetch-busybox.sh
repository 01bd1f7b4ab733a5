#!/usr/bin/env bash
# Fetches Debian's busybox (the package busybox, dynamically linked) and
# puts its binary at OUT, for the stand-in images of make cri-test
# (tests/cri). Not busybox-static, which the host has: that one is built
# as a standalone shell, whose sh runs its own ls even where /bin/ls is
# masked (critest's MaskedPaths spec), and the two packages conflict, so
# this one is downloaded with apt-get download (as root, in a temporary
# directory) and unpacked with dpkg-deb -x; nothing is installed. make
# runs it once, when OUT does not exist.
#
# Usage: scripts/cri/fetch-busybox.sh OUT
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUT" >&2
	exit 2
fi
case "$1" in
/*) out=$1 ;;
*) out=$PWD/$1 ;;
esac
work=$(mktemp -d)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download -q busybox >&2
dpkg-deb -x busybox_*.deb root
mkdir -p "$(dirname "$out")"
install -m 0755 root/bin/busybox "$out.tmp"
mv "$out.tmp" "$out"
echo "fetch-busybox: $(dpkg-deb -f busybox_*.deb Version) at $out" >&2
