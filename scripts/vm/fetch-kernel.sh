#!/usr/bin/env bash
# Fetches a Debian cloud kernel for a qemu guest: the kernel the cgroup-v2
# test VM boots (Documentation/testing-vm.md; Debian 12's, from the host's
# apt) and the kvm flavor's guest kernel (stage1-kvm/README.md; from a
# suite the host's apt does not list, such as trixie-backports). It takes
# the package that linux-image-cloud-amd64 currently depends on, downloads
# it with apt-get download and unpacks it with dpkg-deb -x; nothing is
# installed on the host. It keeps, in OUTDIR:
#
#   vmlinuz          the kernel
#   modules/*.ko     the modules asked for, and their dependencies, that
#                    are modules in this kernel, decompressed
#   modules.order    their file names, dependencies first
#   modules.builtin  the file names of those the kernel has built in
#   version          the kernel release (uname -r in the guest)
#   packages         the Debian packages it came from (name version)
#
# The VM's tests run pods with --net=host or --net=none, so networking
# modules (veth, bridge, nf_tables) are left out: the cloud kernel has the
# namespaces, cgroup v2 with its controllers, seccomp, devtmpfs and the
# 8250 serial console built in, and only overlayfs as a module.
#
# Two package layouts are understood: Debian 12's, where
# linux-image-VERSION-cloud-amd64 holds the kernel (/boot/vmlinuz-*) and
# its modules, and the one of Linux 7 in trixie-backports, where that
# package is empty and depends on linux-binary-VERSION-* (the kernel, in
# /usr/lib/modules/VERSION/vmlinuz), linux-modules-VERSION-* (the modules)
# and linux-base-VERSION-* (modules.builtin): those are downloaded too.
#
# With VM_KERNEL_SUITE set, apt runs with a configuration of its own in
# VM_KERNEL_APT_DIR (a sources list naming only that suite, its own package
# lists, cache and an empty dpkg status; the host's /etc/apt/sources.list*
# and preferences are not read): `apt-get update` and `apt-get download`
# of that configuration only, the Release file's signature checked against
# VM_KERNEL_KEYRING as apt always does.
#
# make runs it once (build/vm/.fetched and build/kvm/.fetched are its
# stamps); `make fetch-vm-kernel` and `make fetch-kvm-kernel` run it again,
# for a newer kernel.
#
# Usage: scripts/vm/fetch-kernel.sh OUTDIR
# Environment:
#   VM_KERNEL_PACKAGE  a linux-image package to take instead of the one
#                      linux-image-cloud-amd64 depends on
#   VM_MODULES         module names to keep (default: overlay)
#   VM_KERNEL_SUITE    a Debian suite to fetch from with a private apt
#                      configuration (e.g. trixie-backports); default: the
#                      host's apt sources
#   VM_KERNEL_MIRROR   that suite's archive (default: http://deb.debian.org/debian)
#   VM_KERNEL_KEYRING  the keyring that signs it (default:
#                      /usr/share/keyrings/debian-archive-keyring.gpg, which
#                      on Debian 12 holds the trixie keys too)
#   VM_KERNEL_APT_DIR  the private configuration's directory (default:
#                      OUTDIR.apt)
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
case "$1" in
/*) outdir=$1 ;;
*) outdir=$PWD/$1 ;;
esac

log() { echo "fetch-vm-kernel: $*" >&2; }
die() {
	echo "fetch-vm-kernel: $*" >&2
	exit 1
}

command -v apt-get >/dev/null || die "apt-get not found"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
command -v modinfo >/dev/null || die "modinfo not found (package kmod)"

# apt's options: none for the host's sources, or a private configuration
# for VM_KERNEL_SUITE (see the top).
apt_opts=()
suite=${VM_KERNEL_SUITE:-}
if [ -n "$suite" ]; then
	mirror=${VM_KERNEL_MIRROR:-http://deb.debian.org/debian}
	keyring=${VM_KERNEL_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
	aptdir=${VM_KERNEL_APT_DIR:-$outdir.apt}
	case "$aptdir" in
	/*) ;;
	*) aptdir=$PWD/$aptdir ;;
	esac
	[ -r "$keyring" ] || die "no keyring $keyring to check $suite's signature (package debian-archive-keyring; or set VM_KERNEL_KEYRING)"
	case "$suite$mirror$keyring" in
	*[[:space:]\]\[]*) die "VM_KERNEL_SUITE, VM_KERNEL_MIRROR and VM_KERNEL_KEYRING may not hold blanks or brackets" ;;
	esac
	mkdir -p "$aptdir/etc/sources.list.d" "$aptdir/etc/preferences.d" "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
	[ -f "$aptdir/status" ] || : >"$aptdir/status"
	line="deb [signed-by=$keyring] $mirror $suite main"
	if [ "$(cat "$aptdir/etc/sources.list" 2>/dev/null)" != "$line" ]; then
		# Another suite's lists would answer for this one.
		rm -rf "$aptdir/lists" "$aptdir/cache"
		mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial"
		printf '%s\n' "$line" >"$aptdir/etc/sources.list"
	fi
	apt_opts=(
		-o "Dir::Etc::SourceList=$aptdir/etc/sources.list"
		-o "Dir::Etc::SourceParts=$aptdir/etc/sources.list.d"
		-o "Dir::Etc::Preferences=$aptdir/etc/preferences"
		-o "Dir::Etc::PreferencesParts=$aptdir/etc/preferences.d"
		-o "Dir::State::Lists=$aptdir/lists"
		-o "Dir::State::status=$aptdir/status"
		-o "Dir::Cache=$aptdir/cache"
		-o "APT::Architecture=amd64"
		-o "APT::Architectures::=amd64"
	)
	from="$suite ($mirror)"
else
	from="the host's apt sources"
fi
apt_update() { apt-get "${apt_opts[@]}" update -qq >&2; }

# resolve_package prints the versioned image package that the cloud
# metapackage depends on now, such as linux-image-6.1.0-28-cloud-amd64.
# Nothing when apt does not know the metapackage (apt-cache fails then).
resolve_package() {
	{ apt-cache "${apt_opts[@]}" depends linux-image-cloud-amd64 2>/dev/null || true; } |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }'
}

# parts prints the packages that hold PKG's files: PKG, and where PKG is
# Linux 7's empty image package, the kernel, modules and base packages of
# the same release that it depends on.
parts() {
	echo "$1"
	{ apt-cache "${apt_opts[@]}" depends "$1" 2>/dev/null || true; } |
		awk '$1 == "Depends:" && $2 ~ /^linux-(binary|modules|base)-[0-9]/ { print $2 }'
}

pkg=${VM_KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
	pkg=$(resolve_package)
	if [ -z "$pkg" ]; then
		# A fresh host, or a private configuration, may have no package
		# lists yet.
		log "linux-image-cloud-amd64 not known to apt; fetching the package lists of $from"
		apt_update
		pkg=$(resolve_package)
	fi
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64 in $from"
elif [ -n "$suite" ] && ! apt-cache "${apt_opts[@]}" show "$pkg" >/dev/null 2>&1; then
	apt_update
fi
read -r -a want <<<"${VM_MODULES:-overlay}"

work=$(mktemp -d)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/deb" "$work/root"
chmod 0777 "$work/deb" # apt-get download writes as _apt
download() {
	local p
	mapfile -t p < <(parts "$pkg")
	log "downloading ${p[*]} from $from"
	(cd "$work/deb" && apt-get "${apt_opts[@]}" download -q "${p[@]}" >&2)
}
if ! download; then
	# Stale package lists name a version the mirror no longer has.
	[ -z "${VM_KERNEL_PACKAGE:-}" ] || die "apt-get download $pkg failed"
	log "apt-get download failed; refreshing the package lists and retrying"
	rm -f "$work"/deb/*.deb
	apt_update
	pkg=$(resolve_package)
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64 in $from"
	download || die "apt-get download $pkg failed"
fi
: >"$work/packages"
for deb in "$work"/deb/*.deb; do
	dpkg-deb -x "$deb" "$work/root"
	dpkg-deb -f "$deb" Package Version | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 } END { print "" }' >>"$work/packages"
done

# Debian 12: /boot/vmlinuz-RELEASE; Linux 7's packages:
# /usr/lib/modules/RELEASE/vmlinuz.
vmlinuz=
if [ -d "$work/root/boot" ]; then
	vmlinuz=$(find "$work/root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
fi
if [ -n "$vmlinuz" ]; then
	release=${vmlinuz##*/vmlinuz-}
else
	for d in "$work/root/usr/lib/modules" "$work/root/lib/modules"; do
		[ -d "$d" ] && [ -z "$vmlinuz" ] && vmlinuz=$(find "$d" -mindepth 2 -maxdepth 2 -name vmlinuz | head -n 1)
	done
	[ -n "$vmlinuz" ] || die "$pkg and the packages it depends on have no kernel (/boot/vmlinuz-* or /usr/lib/modules/*/vmlinuz)"
	release=$(basename "$(dirname "$vmlinuz")")
fi
moddir=$work/root/lib/modules/$release
[ -d "$moddir" ] || moddir=$work/root/usr/lib/modules/$release
[ -d "$moddir" ] || die "$pkg has no modules for $release"
[ -f "$moddir/modules.builtin" ] || die "$pkg has no modules.builtin for $release"

# find_module prints the path of module NAME (dashes and underscores are
# the same in module names), decompressed if the package compresses it.
find_module() {
	local name=$1 f
	[ -d "$moddir/kernel" ] || return 1
	f=$(find "$moddir/kernel" -regextype posix-extended \
		-regex ".*/${name//[-_]/[-_]}\.ko(\.xz|\.zst|\.gz)?" | head -n 1)
	[ -n "$f" ] || return 1
	case "$f" in
	*.ko) echo "$f" ;;
	*.xz) xz -dc "$f" >"$work/$name.ko" && echo "$work/$name.ko" ;;
	*.zst) zstd -qdc "$f" >"$work/$name.ko" && echo "$work/$name.ko" ;;
	*.gz) gzip -dc "$f" >"$work/$name.ko" && echo "$work/$name.ko" ;;
	esac
}

# The modules, each after its dependencies (modinfo -F depends), built-in
# ones (modules.builtin) skipped.
declare -A done_=()
order=()
builtin=()
add_module() {
	local name=${1//-/_} path dep
	[ -n "${done_[$name]:-}" ] && return 0
	done_[$name]=1
	if grep -qE "/${1//[-_]/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
		builtin+=("$name.ko")
		return 0
	fi
	path=$(find_module "$1") || die "module $1 not in $pkg"
	for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
		add_module "$dep"
	done
	order+=("$name.ko")
	cp "$path" "$work/out/modules/$name.ko"
}
mkdir -p "$work/out/modules"
for m in "${want[@]}"; do
	add_module "$m"
done

cp "$vmlinuz" "$work/out/vmlinuz"
printf '%s\n' "$release" >"$work/out/version"
printf '%s\n' "${order[@]}" >"$work/out/modules.order"
printf '%s\n' "${builtin[@]}" >"$work/out/modules.builtin"
cp "$work/packages" "$work/out/packages"
rm -rf "$outdir"
mkdir -p "$(dirname "$outdir")"
mv "$work/out" "$outdir"
chmod 0755 "$outdir"
log "kept $outdir: kernel $release, modules: ${order[*]:-none}; built in: ${builtin[*]:-none}"
