#!/usr/bin/env bash
# Makes a fresh Debian 12 root for the package test (tests/packaging): a
# debootstrap of bookworm with systemd as its init, so that the test can
# boot it with systemd-nspawn --boot and use real units, timers and
# sockets. debootstrap runs once per set of inputs: its result is kept as
# CACHEDIR/bookworm-KEY.tar, KEY a hash of the suite, mirror, variant,
# package list and this script, and every later call only unpacks it.
#
# Usage: scripts/package-test-root.sh CACHEDIR ROOTDIR
# ROOTDIR must not exist or be empty; it is left holding the root.
# Environment: DEBIAN_MIRROR (default: http://deb.debian.org/debian).
set -euo pipefail

if [ "$#" -ne 2 ]; then
	echo "usage: $0 CACHEDIR ROOTDIR" >&2
	exit 2
fi
cachedir=$1
root=$2
log() { echo "package-test-root: $*" >&2; }

suite=bookworm
variant=minbase
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd-sysv makes systemd the root's init; dbus is what systemctl
# and the units of a booted Debian expect to find; the packages'
# Depends come from the debs themselves, so dpkg -i needs no network.
include=systemd,systemd-sysv,dbus,ca-certificates,iproute2

key=$(printf '%s\n' "$suite" "$variant" "$mirror" "$include" | cat - "$0" | sha256sum | cut -c1-16)
cache=$cachedir/$suite-$key.tar

if [ ! -e "$cache" ]; then
	command -v debootstrap >/dev/null || {
		log "debootstrap not found: scripts/install-deps.sh installs it"
		exit 1
	}
	mkdir -p "$cachedir"
	work=$(mktemp -d "$cachedir/.debootstrap.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	start=$(date +%s)
	log "debootstrap $suite ($variant, +$include) from $mirror; kept as $cache"
	debootstrap --variant="$variant" --include="$include" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 || {
		tail -n 30 "$work/log" >&2
		exit 1
	}
	# The root starts clean: no apt lists or package cache to carry.
	rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
	tar -C "$work/root" --numeric-owner -cf "$cache.tmp" .
	mv "$cache.tmp" "$cache"
	log "debootstrap took $(($(date +%s) - start))s"
fi

mkdir -p "$root"
if [ -n "$(ls -A "$root")" ]; then
	log "$root is not empty"
	exit 1
fi
tar -C "$root" --numeric-owner -xf "$cache"
log "unpacked $cache into $root"
