#!/usr/bin/env bash
# The README's first command ends here: fetch the hello image the build
# made into a throwaway data directory and show what nscn did with it.
# Usage: scripts/quickstart.sh NSCN IMAGEDIR
set -euo pipefail

nscn=${1:?usage: quickstart.sh NSCN IMAGEDIR}
images=${2:?usage: quickstart.sh NSCN IMAGEDIR}
dir=$(mktemp -d /tmp/nscn-quickstart.XXXXXX)
trap 'rm -rf "$dir"' EXIT

run() {
	echo "+ nscn $*" >&2
	"$nscn" --dir "$dir" "$@"
}

# The build's images are not signed by a key this host trusts, hence
# --insecure-options=image (see Documentation/signing-and-verification.md).
id=$(run --insecure-options=image fetch "$images/hello.aci")
run image list
run image render "$id" "$dir/hello"
echo "+ chroot $dir/hello/rootfs /bin/sh -c 'echo \$GREETING'" >&2
GREETING="Hello from Nose Cone" chroot "$dir/hello/rootfs" /bin/sh -c 'echo "$GREETING: rendered $(ls /bin | wc -l) files of image '"$id"'"'
