#!/usr/bin/env bash
# Builds the stage1-nspawn image (Documentation/stage1-flavors.md): the
# static entrypoints and app helper plus the systemd tree that
# scripts/fetch-systemd.sh assembled, laid out as an ACI image directory in
# build/stage1-nspawn, packed into OUTDIR_BIN/stage1-nspawn.aci and checked
# with actool.
#
# The CNI plugins (scripts/build-cni-plugins.sh) go into
# rootfs/usr/lib/nscn/cni, where the run and gc entrypoints look for them
# (Documentation/networking.md).
#
# This script never downloads: run scripts/fetch-systemd.sh first (or point
# SYSTEMD_DIR at its output), and build the plugins (make cni-plugins, or
# point CNI_PLUGIN_DIR at them).
#
# Usage: scripts/build-stage1-nspawn.sh OUTDIR_BIN
# Environment: SYSTEMD_DIR (fetch-systemd.sh's OUTDIR; default:
# build/systemd), CNI_PLUGIN_DIR (build-cni-plugins.sh's OUTDIR; default:
# build/cni-plugins), VERSION (version label; default: git describe, or "dev"),
# GOARCH (default: the host's), GO (default: go), SOURCE_DATE_EPOCH
# (timestamps in the archive; default: 0).
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
image=build/stage1-nspawn
cni=${CNI_PLUGIN_DIR:-build/cni-plugins}
cni_plugins=(ptp bridge host-local portmap loopback)

if [ ! -x "$systemd/rootfs/usr/bin/systemd-nspawn" ]; then
	echo "build-stage1-nspawn: no systemd tree in $systemd; run scripts/fetch-systemd.sh $systemd first" >&2
	exit 1
fi
for p in "${cni_plugins[@]}"; do
	if [ ! -x "$cni/$p" ]; then
		echo "build-stage1-nspawn: no CNI plugin $cni/$p; run scripts/build-cni-plugins.sh $cni first" >&2
		exit 1
	fi
done

rm -rf "$image"
mkdir -p "$image" "$outdir"
cp -a "$systemd/rootfs" "$image/rootfs"
root=$image/rootfs

echo "build-stage1-nspawn: building the entrypoints for linux/$goarch"
mkdir -p "$root/nscn"
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$root/nscn/" ./stage1/cmd/init ./stage1/cmd/enter ./stage1/cmd/gc ./stage1/cmd/stop ./stage1/cmd/app ./stage1/cmd/app-init \
	./stage1/cmd/app-add ./stage1/cmd/app-start ./stage1/cmd/app-stop ./stage1/cmd/app-rm

mkdir -p "$root/usr/lib/nscn/cni"
for p in "${cni_plugins[@]}"; do
	cp "$cni/$p" "$root/usr/lib/nscn/cni/$p"
done

# The units every pod shares (the targets that end it, nscn-exit.service,
# journald's), in /usr/lib/systemd/system; init writes each pod's own
# (default.target, the apps') into /etc/systemd/system.
env -u GOARCH -u GOOS "$go" run ./stage1/cmd/mkunits "$root"

# What systemd and systemd-nspawn expect of an OS tree.
mkdir -p "$root/etc/systemd/system" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
	"$root/var" "$root/root" "$root/opt/stage2" "$root/rkt/status" "$root/var/log/journal"
# The pod's journald (Documentation/logging.md): run binds the pod
# directory's journal/ on /var/log/journal. Every line an app writes is
# kept (no rate limit) and nothing is forwarded: the apps' output reaches
# nscn run through the app helper.
cat >"$root/etc/systemd/journald.conf" <<'JOURNALD'
[Journal]
Storage=persistent
RateLimitIntervalSec=0
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
JOURNALD
ln -sfn ../run "$root/var/run"
cat >"$root/usr/lib/os-release" <<OSREL
NAME="Nose Cone stage1-nspawn"
ID=nscn-stage1
VERSION_ID=$version
PRETTY_NAME="Nose Cone stage1-nspawn $version"
OSREL
ln -sfn ../usr/lib/os-release "$root/etc/os-release"
: >"$root/etc/machine-id"
printf 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

# The image manifest and the archive: the packer every flavor's build
# uses, on the build host whatever the target architecture. The facts
# below are stage1/nspawn's (ImageName, Entrypoint*, InterfaceVersion);
# its tests check they agree.
env -u GOARCH -u GOOS "$go" run ./internal/stage1/cmd/mkstage1 \
	-name nosecone.dev/nscn/stage1-nspawn -version "$version" -arch "$goarch" \
	-interface-version app-tty \
	-run /nscn/init -enter /nscn/enter -gc /nscn/gc -stop /nscn/stop \
	-app-add /nscn/app-add -app-start /nscn/app-start -app-stop /nscn/app-stop -app-rm /nscn/app-rm \
	-dir "$image" -o "$outdir/stage1-nspawn.aci"

env -u GOARCH -u GOOS "$go" tool actool validate "$outdir/stage1-nspawn.aci"
echo "build-stage1-nspawn: wrote $outdir/stage1-nspawn.aci (version $version)"
