#!/usr/bin/env bash
# The README's first command ends here: run the hello image the build made
# in a pod, with a throwaway data directory, printing each nscn command.
# Usage: scripts/quickstart.sh NSCN IMAGEDIR
set -euo pipefail

nscn=${1:?usage: quickstart.sh NSCN IMAGEDIR}
images=${2:?usage: quickstart.sh NSCN IMAGEDIR}
dir=$(mktemp -d /tmp/nscn-quickstart.XXXXXX)
cleanup() {
	"$nscn" --dir "$dir" gc --grace-period=0s >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

run() {
	echo "+ nscn --dir $dir $*" >&2
	"$nscn" --dir "$dir" "$@"
}

# The build's images are not signed by a key this host trusts, hence
# --insecure-options=image (see Documentation/signing-and-verification.md).
run --insecure-options=image fetch "$images/hello.aci"
run run nosecone.dev/hello
# shellcheck disable=SC2016 # the app's shell expands these, inside the pod
run --insecure-options=image run "$images/busybox.aci" --exec=/bin/sh -- -c 'echo "busybox says: I am $AC_APP_NAME, pid $$, in $(pwd)"'
run list
run image list
