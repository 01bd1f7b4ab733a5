#!/usr/bin/env bash
# Fetches the systemd bits the stage1-nspawn image carries and assembles them
# into OUTDIR/rootfs: systemd (the pod's pid 1), systemd-shutdown,
# systemd-nspawn, systemctl, systemd-journald and journalctl (the pod's
# journal, Documentation/logging.md), the shared libraries they link (resolved by the
# dynamic loader that ships with them, never from the host) and that loader.
# See Documentation/stage1-flavors.md.
#
# By default the Debian packages are downloaded with apt-get download (as
# root, in a temporary directory: apt drops privileges to _apt for it) and
# unpacked with dpkg-deb -x; nothing is installed on the host. make runs it
# once, when build/systemd has not been fetched yet.
#
# A distribution packager points the build at its own systemd instead:
#   SYSTEMD_ROOT=/            take the binaries and libraries of the host
#   SYSTEMD_ROOT=/some/tree   take them from an unpacked tree
# Then nothing is downloaded and apt is not needed.
#
# Usage: scripts/fetch-systemd.sh OUTDIR
# Environment: SYSTEMD_ROOT (see above), SYSTEMD_PACKAGES (the packages to
# download; default: systemd systemd-container libsystemd-shared).
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
case "$1" in
/*) outdir=$1 ;;
*) outdir=$PWD/$1 ;;
esac

log() { echo "fetch-systemd: $*" >&2; }
die() {
	echo "fetch-systemd: $*" >&2
	exit 1
}

# The files the image needs, relative to the systemd root. The first that
# exists of each "a|b" group is taken (Debian keeps some under /lib, merged
# /usr systems under /usr/lib).
binaries=(
	"usr/lib/systemd/systemd|lib/systemd/systemd"
	"usr/lib/systemd/systemd-shutdown|lib/systemd/systemd-shutdown"
	"usr/bin/systemd-nspawn|bin/systemd-nspawn"
	"usr/bin/systemctl|bin/systemctl"
	"usr/lib/systemd/systemd-journald|lib/systemd/systemd-journald"
	"usr/bin/journalctl|bin/journalctl"
)

# lib_closure_pkgs prints the library packages the given packages need,
# recursively: Depends and Pre-Depends, first alternative, lib* packages
# only (systemd's other dependencies, mount or adduser, are not needed in
# the image). Packages that only carry modules (PAM) or perl are skipped.
lib_closure_pkgs() {
	local -A seen=()
	local queue=("$@") pkg dep
	while [ "${#queue[@]}" -gt 0 ]; do
		pkg=${queue[0]}
		queue=("${queue[@]:1}")
		[ -n "${seen[$pkg]:-}" ] && continue
		seen[$pkg]=1
		echo "$pkg"
		while read -r dep; do
			case "$dep" in
			libpam-modules* | libperl* | *-perl | libelogind*) ;;
			lib*) queue+=("$dep") ;;
			esac
		done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
			--no-replaces --no-enhances "$pkg" |
			awk '/^  (\|)?(Pre)?Depends: / { if (skip) { skip = ($1 == "|Depends:" || $1 == "|PreDepends:"); next }
				skip = ($1 == "|Depends:" || $1 == "|PreDepends:"); gsub(/[<>]/, "", $2); print $2 }
				/^  [^|]/ && !/Depends:/ { skip = 0 }')
	done
}

work=$(mktemp -d)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT

if [ -n "${SYSTEMD_ROOT:-}" ]; then
	src=${SYSTEMD_ROOT%/}
	[ -n "$src" ] || src=/
	log "using the systemd installed under $src"
else
	command -v apt-get >/dev/null || die "apt-get not found: set SYSTEMD_ROOT to take systemd from a tree"
	read -r -a pkgs <<<"${SYSTEMD_PACKAGES:-systemd systemd-container libsystemd-shared}"
	mapfile -t all < <(lib_closure_pkgs "${pkgs[@]}")
	log "downloading ${#all[@]} packages: ${all[*]}"
	mkdir -p "$work/debs" "$work/root"
	chmod 0777 "$work/debs" # apt-get download writes as _apt
	# A fresh host may have no package lists yet: refresh once and retry.
	if ! (cd "$work/debs" && apt-get download -q "${all[@]}" >&2); then
		log "apt-get download failed; refreshing the package lists and retrying"
		apt-get update -qq >&2
		(cd "$work/debs" && apt-get download -q "${all[@]}" >&2)
	fi
	for deb in "$work"/debs/*.deb; do
		dpkg-deb -x "$deb" "$work/root"
	done
	src=$work/root
fi

# pick returns the first existing path of an "a|b" group under $src.
pick() {
	local alt
	IFS='|' read -r -a alts <<<"$1"
	for alt in "${alts[@]}"; do
		if [ -e "$src/$alt" ]; then
			echo "$alt"
			return 0
		fi
	done
	return 1
}

# The dynamic loader of the systemd root, found through its usual names.
loader=
for l in lib64/ld-linux-x86-64.so.2 usr/lib64/ld-linux-x86-64.so.2 lib/ld-linux-aarch64.so.1 \
	usr/lib/ld-linux-aarch64.so.1 lib/ld-linux-armhf.so.3 usr/lib/ld-linux-armhf.so.3; do
	if [ -e "$src/$l" ]; then
		loader=$l
		break
	fi
done
[ -n "$loader" ] || die "no dynamic loader under $src"

# The multiarch directory of the loader's architecture: the image keeps its
# libraries there, among the loader's default search paths, so that
# systemd starts inside the pod without an ld.so.cache.
case "$loader" in
*x86-64*) triplet=x86_64-linux-gnu ;;
*aarch64*) triplet=aarch64-linux-gnu ;;
*armhf*) triplet=arm-linux-gnueabihf ;;
esac

# The library directories of the systemd root, private ones first.
libpath=
for d in usr/lib/$triplet/systemd lib/$triplet/systemd usr/lib/systemd lib/systemd \
	usr/lib/$triplet lib/$triplet usr/lib64 lib64 usr/lib lib; do
	[ -d "$src/$d" ] && libpath=${libpath:+$libpath:}$src/$d
done

# The image is merged-/usr, with relative symlinks only: init runs the
# image's loader from the host, where an absolute link would point at the
# host's files.
dst=$outdir/rootfs
rm -rf "$dst"
mkdir -p "$dst/usr/bin" "$dst/usr/sbin" "$dst/usr/lib/systemd" "$dst/usr/lib/$triplet" "$dst/usr/lib64"
ln -s usr/bin "$dst/bin"
ln -s usr/sbin "$dst/sbin"
ln -s usr/lib "$dst/lib"
ln -s usr/lib64 "$dst/lib64"

declare -A libs=()
for group in "${binaries[@]}"; do
	rel=$(pick "$group") || die "none of ${group//|/, } under $src"
	to=${group%%|*}
	cp -L "$src/$rel" "$dst/$to"
	chmod 0755 "$dst/$to"
	# The loader lists what the binary needs, resolved in the systemd root
	# only: "name => /path (0x…)".
	out=$("$src/$loader" --library-path "$libpath" --list "$src/$rel") ||
		die "resolve the libraries of $rel: $out"
	if grep -q 'not found' <<<"$out"; then
		die "libraries of $rel are missing under $src: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
	fi
	while read -r lib; do
		libs[$lib]=1
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$out")
done
for lib in "${!libs[@]}"; do
	cp -L "$lib" "$dst/usr/lib/$triplet/$(basename "$lib")"
done
loadername=$(basename "$loader")
cp -L "$src/$loader" "$dst/usr/lib/$triplet/$loadername"
chmod 0755 "$dst/usr/lib/$triplet/$loadername"
case "$loader" in
*lib64/*) ln -s "../lib/$triplet/$loadername" "$dst/usr/lib64/$loadername" ;;
*) ln -sf "$triplet/$loadername" "$dst/usr/lib/$loadername" ;;
esac
# systemd-nspawn reads the version of the image's systemd from the name of
# libsystemd-shared under /usr/lib/systemd to pick the container's cgroup
# layout.
for lib in "$dst/usr/lib/$triplet"/libsystemd-shared-*.so; do
	[ -e "$lib" ] && ln -s "../$triplet/$(basename "$lib")" "$dst/usr/lib/systemd/$(basename "$lib")"
done
log "assembled $dst: ${#binaries[@]} binaries, ${#libs[@]} libraries, loader /$loader"
