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

# elf_kernel writes the kernel of bzImage $1 as an ELF image (vmlinux) to
# $2, when it can: the bzImage's payload (setup header: setup_sects at
# 0x1f1, payload_offset at 0x248, payload_length at 0x24c), decompressed
# by its format, and only if the result has a PVH entry point (the Xen
# ELF note 18, PHYS32_ENTRY, which Debian's kernels have: CONFIG_PVH).
# qemu's -kernel loads such an image as it is and enters it there, so
# the guest skips the kernel's decompressor: for trixie-backports' 7.3,
# whose payload is zstd, 2.5 to 3.4 s of a TCG boot (5.4 to 6.6 s against
# 3.2 to 3.7 s to /init, measured on 2026-12-07 on the 2-core host at a
# load of 9 to 13).
elf_kernel() {
	local bz=$1 out=$2 setup off len start magic
	setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
	[ "${setup:-0}" -ne 0 ] || setup=4
	off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
	len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
	[ -n "$off" ] && [ -n "$len" ] && [ "$len" -gt 4 ] || return 1
	start=$(((setup + 1) * 512 + off))
	magic=$(od -An -tx1 -j "$start" -N4 "$bz" | tr -d ' \n')
	# Every format but gzip has the decompressed size appended (4 bytes),
	# which the decompressors take for trailing garbage.
	local dec
	case "$magic" in
	28b52ffd) dec="zstd -qdc" len=$((len - 4)) ;;
	02214c18) dec="lz4 -dc" len=$((len - 4)) ;;
	fd377a58) dec="xz -dc" len=$((len - 4)) ;;
	1f8b*) dec="gzip -dc" ;;
	*) return 1 ;;
	esac
	command -v "${dec%% *}" >/dev/null || return 1
	dd if="$bz" bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$len" status=none | $dec >"$out" 2>/dev/null || return 1
	[ "$(od -An -tx1 -N4 "$out" | tr -d ' \n')" = 7f454c46 ] || return 1
	LC_ALL=C grep -qaP '\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00' "$out"
}

rm -rf "$image"
mkdir -p "$image" "$outdir"
cp -a "$systemd/rootfs" "$image/rootfs"
root=$image/rootfs

echo "build-stage1-kvm: building the entrypoints for linux/$goarch"
mkdir -p "$root/nscn/kvm" "$image/tmp"
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$root/nscn/" ./stage1-kvm/cmd/run ./stage1-kvm/cmd/enter ./stage1-kvm/cmd/stop ./stage1-kvm/cmd/gc ./stage1-kvm/cmd/agent \
	./stage1-kvm/cmd/app ./stage1/cmd/app-init \
	./stage1-kvm/cmd/app-add ./stage1-kvm/cmd/app-start ./stage1-kvm/cmd/app-stop ./stage1-kvm/cmd/app-rm
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$image/tmp/guest-init" ./stage1-kvm/cmd/guest-init
env -u GOARCH -u GOOS "$go" run ./stage1-kvm/cmd/mkinitramfs "$root/nscn/kvm/initramfs" "$image/tmp/guest-init" "$kernel"
rm -rf "$image/tmp"
mkdir -p "$root/usr/lib/nscn/cni"
for p in "${cni_plugins[@]}"; do
	cp "$cni/$p" "$root/usr/lib/nscn/cni/$p"
done
# /nscn/kvm/vmlinuz keeps its name (config.json, the bench's bare boot)
# but holds the ELF image when elf_kernel can make one.
if elf_kernel "$kernel/vmlinuz" "$root/nscn/kvm/vmlinuz"; then
	echo "build-stage1-kvm: the kernel as an ELF image with a PVH entry point (no decompression at boot)"
else
	echo "build-stage1-kvm: carrying the compressed kernel as it is (no ELF image with a PVH entry point made from it)"
	cp "$kernel/vmlinuz" "$root/nscn/kvm/vmlinuz"
fi
cat >"$root/nscn/kvm/config.json" <<CONFIG
{
  "qemu": "$qemu",
  "virtiofsd": "$virtiofsd",
  "kernel": "/nscn/kvm/vmlinuz",
  "initrd": "/nscn/kvm/initramfs",
  "kernelRelease": "$(cat "$kernel/version")"
}
CONFIG

# What systemd expects of an OS tree; the pod's units are written by run
# for each pod.
mkdir -p "$root/etc/systemd/system" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
	"$root/var" "$root/root" "$root/opt/stage2" "$root/rkt/status"
ln -sfn ../run "$root/var/run"
# The targets every pod's mount units name; run writes the pod's own
# units beside them.
env -u GOARCH -u GOOS "$go" run ./stage1-kvm/cmd/mkunits "$root"
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
# nspawn flavor's interface version and its app entrypoints.
env -u GOARCH -u GOOS "$go" run ./internal/stage1/cmd/mkstage1 \
	-name nosecone.dev/nscn/stage1-kvm -version "$version" -arch "$goarch" \
	-interface-version mount-options \
	-run /nscn/run -enter /nscn/enter -gc /nscn/gc -stop /nscn/stop \
	-app-add /nscn/app-add -app-start /nscn/app-start -app-stop /nscn/app-stop -app-rm /nscn/app-rm \
	-dir "$image" -o "$outdir/stage1-kvm.aci"

env -u GOARCH -u GOOS "$go" tool actool validate "$outdir/stage1-kvm.aci"
echo "build-stage1-kvm: wrote $outdir/stage1-kvm.aci (version $version)"
