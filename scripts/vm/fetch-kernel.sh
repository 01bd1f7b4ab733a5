#!/usr/bin/env bash
# Fetches the kernel the cgroup-v2 test VM boots (Documentation/testing-vm.md):
# Debian 12's cloud kernel, the package that linux-image-cloud-amd64
# currently depends on, downloaded with apt-get download and unpacked with
# dpkg-deb -x; nothing is installed on the host. It keeps, in OUTDIR:
#
#   vmlinuz        the kernel
#   modules/*.ko   the modules nscn needs in the VM, in load order
#   modules.order  their file names, dependencies first
#   version        the kernel release (uname -r in the VM)
#
# The VM's tests run pods with --net=host or --net=none, so networking
# modules (veth, bridge, nf_tables) are left out: the cloud kernel has the
# namespaces, cgroup v2 with its controllers, seccomp, devtmpfs and the
# 8250 serial console built in, and only overlayfs as a module.
#
# make runs it once (build/vm/.fetched is its stamp); `make fetch-vm-kernel`
# runs it again, for a newer kernel.
#
# Usage: scripts/vm/fetch-kernel.sh OUTDIR
# Environment: VM_KERNEL_PACKAGE (a linux-image package to take instead of
# the current one), VM_MODULES (module names to keep; default: overlay).
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

# resolve_package prints the versioned image package that the cloud
# metapackage depends on now, such as linux-image-6.1.0-28-cloud-amd64.
resolve_package() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64$/ { print $2; exit }'
}

pkg=${VM_KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
	pkg=$(resolve_package)
	if [ -z "$pkg" ]; then
		# A fresh host may have no package lists yet.
		log "linux-image-cloud-amd64 not known to apt; refreshing the package lists"
		apt-get update -qq >&2
		pkg=$(resolve_package)
	fi
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64"
fi
read -r -a want <<<"${VM_MODULES:-overlay}"

work=$(mktemp -d)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/deb" "$work/root"
chmod 0777 "$work/deb" # apt-get download writes as _apt
log "downloading $pkg"
if ! (cd "$work/deb" && apt-get download -q "$pkg" >&2); then
	# Stale package lists name a version the mirror no longer has.
	[ -z "${VM_KERNEL_PACKAGE:-}" ] || die "apt-get download $pkg failed"
	log "apt-get download failed; refreshing the package lists and retrying"
	apt-get update -qq >&2
	pkg=$(resolve_package)
	[ -n "$pkg" ] || die "cannot resolve the kernel package of linux-image-cloud-amd64"
	(cd "$work/deb" && apt-get download -q "$pkg" >&2)
fi
dpkg-deb -x "$work"/deb/*.deb "$work/root"

vmlinuz=$(find "$work/root/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "$pkg has no /boot/vmlinuz-*"
release=${vmlinuz##*/vmlinuz-}
moddir=$work/root/lib/modules/$release
[ -d "$moddir" ] || moddir=$work/root/usr/lib/modules/$release
[ -d "$moddir" ] || die "$pkg has no modules for $release"

# find_module prints the path of module NAME (dashes and underscores are
# the same in module names), decompressed if the package compresses it.
find_module() {
	local name=$1 f
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
add_module() {
	local name=${1//-/_} path dep
	[ -n "${done_[$name]:-}" ] && return 0
	done_[$name]=1
	if grep -qE "/${1//[-_]/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then
		log "$1 is built in"
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
rm -rf "$outdir"
mkdir -p "$(dirname "$outdir")"
mv "$work/out" "$outdir"
chmod 0755 "$outdir"
log "kept $outdir: kernel $release, modules: ${order[*]:-none}"
