#!/usr/bin/env bash
# Builds the CNI plugins that Nose Cone's networking uses, statically, from
# the github.com/containernetworking/plugins version pinned in go.mod (they
# are listed as tool directives there, so go.sum covers them and a build
# never resolves a new version).
#
# Usage: scripts/build-cni-plugins.sh OUTDIR
#
# OUTDIR receives one executable per plugin: ptp, bridge, host-local,
# portmap and loopback. The nspawn stage1 copies them into its image; the
# networking tests run against them (NSCN_CNI_PLUGIN_DIR).
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
GO=${GO:-go}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

mod=github.com/containernetworking/plugins/plugins
plugins=(
	"$mod/main/ptp"
	"$mod/main/bridge"
	"$mod/main/loopback"
	"$mod/ipam/host-local"
	"$mod/meta/portmap"
)

mkdir -p "$out"
version=$("$GO" list -m -f '{{.Version}}' github.com/containernetworking/plugins)
echo "build-cni-plugins: containernetworking/plugins $version -> $out"
CGO_ENABLED=0 GOFLAGS=-mod=readonly "$GO" build -trimpath \
	-ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version" \
	-o "$out/" "${plugins[@]}"
