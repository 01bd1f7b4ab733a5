#!/usr/bin/env bash
# Builds crictl or critest of the sigs.k8s.io/cri-tools module at VERSION
# into OUT: crictl as a program, critest as its test binary (the suite is a
# Go test package). The module comes from the Go module proxy like any
# dependency; nothing else is downloaded.
set -euo pipefail
version=$1 tool=$2 out=$3
GO=${GO:-go}
dir=$(GOFLAGS=-mod=mod "$GO" mod download -json "sigs.k8s.io/cri-tools@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-cri-tools: sigs.k8s.io/cri-tools@$version not downloaded" >&2; exit 1; }
cd "$dir"
case $tool in
crictl) CGO_ENABLED=0 "$GO" build -trimpath -o "$out.tmp" ./cmd/crictl ;;
critest) CGO_ENABLED=0 "$GO" test -c -trimpath -o "$out.tmp" ./cmd/critest ;;
*) echo "build-cri-tools: unknown tool $tool (crictl or critest)" >&2; exit 2 ;;
esac
mv "$out.tmp" "$out"
