#!/usr/bin/env bash
# Prints the Debian version of the packages make deb builds, from git:
# a tag vX.Y.Z gives X.Y.Z, with +gitN.HASH after it when N commits follow;
# with no tag, 0~gitDATE.HASH (DATE the commit's, so that it is the same
# on every build of that commit). A dirty tree adds +dirty: a package
# built from uncommitted files says so. Debian versions must start with a
# digit, which git describe's bare hash does not.
set -euo pipefail
cd "$(dirname "$0")/.."

dirty=
if ! git diff --quiet HEAD 2>/dev/null; then
	dirty=+dirty
fi
if desc=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	desc=${desc#v}
	if [[ $desc =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		echo "${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.${BASH_REMATCH[3]}$dirty"
	else
		echo "$desc$dirty"
	fi
	exit 0
fi
if hash=$(git rev-parse --short HEAD 2>/dev/null); then
	echo "0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$hash$dirty"
	exit 0
fi
echo "0~dev"
