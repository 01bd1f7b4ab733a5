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
	dbus-daemon # a private bus for the systemd-machined tests
	systemd     # journalctl: nscn logs and the journal tests read the pods' journals
	qemu-system-x86 # the cgroup v2 test VM (make vm-test); stage1-kvm runs its qemu and virtiofsd (qemu-system-common)
	shellcheck # make lint
	docker-registry skopeo podman apache2-utils # the registry suite (make registry) and the bench's pull figure
	containerd runc # make cri-test: the peer critest runs beside nscn cri
	procps # make cri-test: pgrep in the stand-in images (util-linux gives ipcs)
	debhelper dpkg-dev lintian # make deb
	systemd systemd-container # make deb: the nspawn stage1 from the host's systemd (SYSTEMD_ROOT=/); make package-test boots a root with systemd-nspawn
	debootstrap # make package-test: a fresh Debian 12 root
	zsh # the generated zsh completion's test
)

# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"
apt_install_missing install-deps "${packages[@]}"
