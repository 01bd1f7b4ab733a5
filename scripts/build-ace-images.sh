#!/usr/bin/env bash
# Builds the appc ACE validator images from the appc/spec module this tree
# requires (go.mod), as appc's own scripts/build-ace-validator-acis does:
#   ace-validator-main.aci      coreos.com/ace-validator-main
#   ace-validator-sidekick.aci  coreos.com/ace-validator-sidekick
# Each holds one static binary, /ace-validator (package github.com/appc/spec/ace),
# an empty /opt/acvalidator (the main app's working directory) and the
# manifest the module ships (ace/image_manifest_<kind>.json.in) with the
# image's os and arch filled in. Run them in one pod, with the volume
# "database" (nscn run --volume database,kind=empty MAIN SIDEKICK); every
# app and event handler prints "<mode> OK" when the executor conforms.
# Usage: scripts/build-ace-images.sh OUTDIR [ACTOOL]   (from the repository root)
set -euo pipefail

out=${1:?usage: build-ace-images.sh OUTDIR [ACTOOL]}
actool=${2:-build/actool}
go=${GO:-go}

if [ ! -f go.mod ]; then
	echo "build-ace-images: run from the repository root (go.mod names the appc/spec version)" >&2
	exit 1
fi
spec=$("$go" list -m -f '{{.Dir}}' github.com/appc/spec)
if [ -z "$spec" ] || [ ! -d "$spec/ace" ]; then
	echo "build-ace-images: the appc/spec module is not in the module cache (go mod download github.com/appc/spec)" >&2
	exit 1
fi

# appc names the architectures as its spec does (spec/types.md): Go's arm64
# is aarch64, and the ARM variants carry their version.
aci_os=$("$go" env GOOS)
goarch=$("$go" env GOARCH)
case $goarch in
arm64) aci_arch=aarch64 ;;
arm) aci_arch=armv$("$go" env GOARM | cut -c1)l ;;
*) aci_arch=$goarch ;;
esac

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Static, so that the image needs nothing else in its rootfs.
CGO_ENABLED=0 "$go" build -trimpath -ldflags=-s -o "$work/ace-validator" github.com/appc/spec/ace

for kind in main sidekick; do
	dir=$work/$kind
	mkdir -p "$dir/rootfs/opt/acvalidator"
	install -m 0755 "$work/ace-validator" "$dir/rootfs/ace-validator"
	sed -e "s/@ACI_OS@/$aci_os/g" -e "s/@ACI_ARCH@/$aci_arch/g" \
		"$spec/ace/image_manifest_$kind.json.in" >"$dir/manifest"
	# A fixed time, so the same module and toolchain give the same image.
	find "$dir/rootfs" -exec touch -h -d 1970-01-01T00:00:00Z {} +
	"$actool" build --overwrite "$dir" "$out/ace-validator-$kind.aci"
	echo "build-ace-images: $out/ace-validator-$kind.aci"
done
