#!/usr/bin/env bash
# Builds the stage1-kvm image (Documentation/stage1-flavors.md,
# stage1-kvm/README.md): the nspawn flavor's systemd tree and app helper,
# the kvm entrypoints and guest agent, the guest kernel and an initramfs
# (the static guest init and the kernel's virtio modules), laid out as an
# ACI image directory in build/stage1-kvm, packed into
# OUTDIR_BIN/stage1-kvm.aci and checked with actool.
#
# qemu and virtiofsd are not in the image: the image records their host
# paths (QEMU, VIRTIOFSD) in /nscn/kvm/config.json, and the run entrypoint
# says which package to install when one is missing.
#
# This script never downloads: run scripts/fetch-systemd.sh and
# scripts/vm/fetch-kernel.sh first (make stage1-kvm does, with the kernel
# of trixie-backports: KVM_KERNEL_SUITE in the Makefile).
#
# Usage: scripts/build-stage1-kvm.sh OUTDIR_BIN
# Environment: SYSTEMD_DIR (default: build/systemd), KERNEL_DIR
# (fetch-kernel.sh's OUTDIR with the kvm modules; default: build/kvm/kernel),
# CNI_PLUGIN_DIR (build-cni-plugins.sh's OUTDIR; default: build/cni-plugins),
# QEMU (default: /usr/bin/qemu-system-x86_64), VIRTIOFSD (default: the
# first of /usr/libexec/virtiofsd and /usr/lib/qemu/virtiofsd that exists),
# VERSION, GOARCH, GO.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUTDIR_BIN" >&2
	exit 2
fi
case "$1" in
/*) outdir=$1 ;;
*) outdir=$PWD/$1 ;;
esac

cd "$(dirname "$0")/.."
go=${GO:-go}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
goarch=${GOARCH:-$(env -u GOARCH "$go" env GOARCH)}
systemd=${SYSTEMD_DIR:-build/systemd}
kernel=${KERNEL_DIR:-build/kvm/kernel}
qemu=${QEMU:-/usr/bin/qemu-system-x86_64}
virtiofsd=${VIRTIOFSD:-}
if [ -z "$virtiofsd" ]; then
	for v in /usr/libexec/virtiofsd /usr/lib/qemu/virtiofsd; do
		if [ -x "$v" ]; then
			virtiofsd=$v
			break
		fi
	done
	virtiofsd=${virtiofsd:-/usr/libexec/virtiofsd}
fi
image=build/stage1-kvm
cni=${CNI_PLUGIN_DIR:-build/cni-plugins}
cni_plugins=(ptp bridge host-local portmap loopback)
# The modules the guest loads (make stage1-kvm passes the same list to
# scripts/vm/fetch-kernel.sh).
kvm_modules="virtio_pci virtiofs virtio_console virtio_net"

die() {
	echo "build-stage1-kvm: $*" >&2
	exit 1
}
[ "$goarch" = amd64 ] || die "the kvm flavor is built for amd64 only (qemu-system-x86_64), not $goarch"
[ -x "$systemd/rootfs/usr/lib/systemd/systemd" ] || die "no systemd tree in $systemd; run scripts/fetch-systemd.sh $systemd first"
[ -f "$kernel/vmlinuz" ] || die "no kernel in $kernel; run make stage1-kvm, or VM_MODULES=\"$kvm_modules\" scripts/vm/fetch-kernel.sh $kernel first"
for p in "${cni_plugins[@]}"; do
	[ -x "$cni/$p" ] || die "no CNI plugin $cni/$p; run scripts/build-cni-plugins.sh $cni first"
done
# Each a module the initramfs carries or built into the kernel (Linux 7's
# cloud kernel has all but virtio_net built in).
for m in $kvm_modules; do
	grep -qx "$m.ko" "$kernel/modules.order" "$kernel/modules.builtin" 2>/dev/null ||
		die "$kernel has no module $m (modules.order) and does not have it built in (modules.builtin); fetch it again with the kvm modules (make stage1-kvm does)"
done

rm -rf "$image"
mkdir -p "$image" "$outdir"
cp -a "$systemd/rootfs" "$image/rootfs"
root=$image/rootfs

echo "build-stage1-kvm: building the entrypoints for linux/$goarch"
mkdir -p "$root/nscn/kvm" "$image/tmp"
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$root/nscn/" ./stage1-kvm/cmd/run ./stage1-kvm/cmd/enter ./stage1-kvm/cmd/stop ./stage1-kvm/cmd/gc ./stage1-kvm/cmd/agent \
	./stage1-kvm/cmd/app ./stage1/cmd/app-init
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$image/tmp/guest-init" ./stage1-kvm/cmd/guest-init
env -u GOARCH -u GOOS "$go" run ./stage1-kvm/cmd/mkinitramfs "$root/nscn/kvm/initramfs" "$image/tmp/guest-init" "$kernel"
rm -rf "$image/tmp"
mkdir -p "$root/usr/lib/nscn/cni"
for p in "${cni_plugins[@]}"; do
	cp "$cni/$p" "$root/usr/lib/nscn/cni/$p"
done
cp "$kernel/vmlinuz" "$root/nscn/kvm/vmlinuz"
cat >"$root/nscn/kvm/config.json" <<CONFIG
{
  "qemu": "$qemu",
  "virtiofsd": "$virtiofsd",
  "kernel": "/nscn/kvm/vmlinuz",
  "initrd": "/nscn/kvm/initramfs",
  "kernelRelease": "$(cat "$kernel/version")"
}
CONFIG

# What systemd expects of an OS tree; the units are written by run for
# each pod.
mkdir -p "$root/etc/systemd/system" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
	"$root/var" "$root/root" "$root/opt/stage2" "$root/rkt/status"
ln -sfn ../run "$root/var/run"
cat >"$root/usr/lib/os-release" <<OSREL
NAME="Nose Cone stage1-kvm"
ID=nscn-stage1
VERSION_ID=$version
PRETTY_NAME="Nose Cone stage1-kvm $version"
OSREL
ln -sfn ../usr/lib/os-release "$root/etc/os-release"
: >"$root/etc/machine-id"
printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

# The manifest and the archive, as for every stage1 image, with the
# nspawn flavor's interface version.
env -u GOARCH -u GOOS "$go" run ./internal/stage1/cmd/mkstage1 \
	-name nosecone.dev/nscn/stage1-kvm -version "$version" -arch "$goarch" \
	-interface-version mds-token-file \
	-run /nscn/run -enter /nscn/enter -gc /nscn/gc -stop /nscn/stop \
	-dir "$image" -o "$outdir/stage1-kvm.aci"

env -u GOARCH -u GOOS "$go" tool actool validate "$outdir/stage1-kvm.aci"
echo "build-stage1-kvm: wrote $outdir/stage1-kvm.aci (version $version)"
