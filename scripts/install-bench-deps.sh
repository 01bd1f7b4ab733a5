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
	docker-registry podman skopeo # the loopback registry and the peer pullers (figure 8, pull)
	containerd     # the CRI peer, with runc (figure 10, cri)
)

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_install_missing install-bench-deps "${packages[@]}"
