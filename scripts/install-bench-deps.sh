#!/usr/bin/env bash
# Installs the Debian packages `make bench` measures Nose Cone against, and
# the tools it measures with. Idempotent: packages already present are not
# downloaded again. Usage: scripts/install-bench-deps.sh
set -euo pipefail

packages=(
	hyperfine      # the timer: medians over repeated runs
	crun runc      # peer OCI runtimes (figure 1)
	util-linux     # unshare, mount: the unshare+chroot floor, private mount namespaces
	gzip tar       # peers of import and render (figures 4 and 5)
	time           # GNU time -v: maximum resident set size (figure 6)
	busybox-static # the rootfs every runtime starts (build/images/busybox.aci)
	systemd-container # systemd-nspawn, the peer of the nspawn flavor (figure 2)
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "install-bench-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-bench-deps: need root to install: ${missing[*]}" >&2
	exit 1
fi

echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
