#!/usr/bin/env bash
# Installs the Debian packages that the build and the test suites need.
# Idempotent: packages already present are not downloaded again.
set -euo pipefail

packages=(
	busybox-static # the test and quickstart images
	gnupg          # keys and signatures made by the tests
	ca-certificates
	xz-utils bzip2 zstd gzip # compressed test images
	iproute2 util-linux kmod
	iptables # CNI ptp ipMasq and portmap; the networking tests
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
