#!/usr/bin/env bash
# Builds the stage1-fly image (Documentation/stage1-fly.md): the four static
# entrypoints laid out as an ACI image directory in build/stage1-fly, packed
# into OUTDIR_BIN/stage1-fly.aci and checked with actool.
#
# Usage: scripts/build-stage1-fly.sh OUTDIR_BIN
# Environment: VERSION (version label; default: git describe, or "dev"),
# GOARCH (target architecture; default: the host's), GO (default: go),
# SOURCE_DATE_EPOCH (timestamps in the archive; default: 0).
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
image=build/stage1-fly

rm -rf "$image"
mkdir -p "$image/rootfs/fly" "$outdir"

echo "build-stage1-fly: building the entrypoints for linux/$goarch"
CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$go" build -trimpath -ldflags "-s -w" \
	-o "$image/rootfs/fly/" ./stage1-fly/cmd/run ./stage1-fly/cmd/enter ./stage1-fly/cmd/gc ./stage1-fly/cmd/stop

# The packer (shared by every flavor's build) runs on the build host,
# whatever the target architecture. The facts below are stage1-fly/fly's
# (ImageName, Entrypoint*, InterfaceVersion, EmptyPodRootfs); its tests check
# they agree.
env -u GOARCH -u GOOS "$go" run ./internal/stage1/cmd/mkstage1 \
	-name nosecone.dev/nscn/stage1-fly -version "$version" -arch "$goarch" \
	-interface-version ipc \
	-run /fly/run -enter /fly/enter -gc /fly/gc -stop /fly/stop \
	-pod-rootfs empty \
	-normalize-modes -dir "$image" -o "$outdir/stage1-fly.aci"
env -u GOARCH -u GOOS "$go" tool actool validate "$outdir/stage1-fly.aci"
echo "build-stage1-fly: wrote $outdir/stage1-fly.aci (version $version)"
