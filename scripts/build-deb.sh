#!/usr/bin/env bash
# Builds the Debian packages nscn, nscn-stage1-nspawn, nscn-stage1-fly and nscn-stage1-kvm
# (Documentation/packaging.md) with dpkg-buildpackage -b, from a copy of the
# tree (its tracked and new files, not bin/ or build/) in
# OUTDIR/src/nscn-VERSION, so that the build starts clean and nothing is
# written outside OUTDIR. Writes debian/changelog for VERSION in the copy,
# then runs lintian on the result and fails on any error tag.
#
# The build is offline: Go's caches are passed in and GOPROXY is off, and
# the nspawn stage1 takes systemd from this host (debian/rules,
# SYSTEMD_ROOT=/).
#
# Usage: scripts/build-deb.sh OUTDIR VERSION
# Environment: GO (default: go on PATH, then /usr/local/go/bin/go).
set -euo pipefail

if [ "$#" -ne 2 ]; then
	echo "usage: $0 OUTDIR VERSION" >&2
	exit 2
fi
case "$1" in
/*) outdir=$1 ;;
*) outdir=$PWD/$1 ;;
esac
version=$2
log() { echo "build-deb: $*" >&2; }

cd "$(dirname "$0")/.."
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null || {
		log "$tool not found: scripts/install-deps.sh installs it"
		exit 1
	}
done

src=$outdir/src/nscn-$version
rm -rf "$outdir"
mkdir -p "$src"
if git rev-parse --git-dir >/dev/null 2>&1; then
	# Tracked files still present, and new files git does not ignore.
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
		done |
		tar --null -T - -cf - | tar -C "$src" -xf -
else
	# A tree without git (a release tarball): all of it but the outputs.
	tar --exclude=./bin --exclude=./build -cf - . | tar -C "$src" -xf -
fi

cat >"$src/debian/changelog" <<CHANGELOG
nscn ($version) unstable; urgency=medium

  * Built by make deb from the tree at $(git describe --tags --always --dirty 2>/dev/null || echo "an unknown commit").

 -- $(sed -n 's/^Maintainer: //p' debian/control)  $(git log -1 --format=%cD 2>/dev/null || date -R)
CHANGELOG

PATH=$(dirname "$go"):$PATH
GOCACHE=$("$go" env GOCACHE)
GOMODCACHE=$("$go" env GOMODCACHE)
GOPATH=$("$go" env GOPATH)
export PATH GOCACHE GOMODCACHE GOPATH GO=$go GOPROXY=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local

start=$(date +%s)
log "dpkg-buildpackage in $src (log: $outdir/build.log)"
if ! (cd "$src" && dpkg-buildpackage -b -us -uc) >"$outdir/build.log" 2>&1; then
	tail -n 40 "$outdir/build.log" >&2
	log "dpkg-buildpackage failed; the whole log is $outdir/build.log"
	exit 1
fi
mv "$outdir"/src/*.deb "$outdir"/src/*.changes "$outdir"/src/*.buildinfo "$outdir/"
log "built in $(($(date +%s) - start))s: $(cd "$outdir" && echo *.deb)"

# lintian at its default level: errors fail the build, warnings are shown.
changes=$(echo "$outdir"/*.changes)
if ! lintian --fail-on error --info "$changes" >"$outdir/lintian.log" 2>&1; then
	cat "$outdir/lintian.log" >&2
	log "lintian found errors"
	exit 1
fi
log "lintian: $(grep -c '^E: ' "$outdir/lintian.log" || true) errors, $(grep -c '^W: ' "$outdir/lintian.log" || true) warnings (in $outdir/lintian.log)"
grep -E '^[EW]: ' "$outdir/lintian.log" >&2 || true
