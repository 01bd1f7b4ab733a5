// Package packaging is the package test (make package-test): it installs
// the Debian packages that make deb built into a fresh Debian 12 root made
// by debootstrap, boots that root with systemd-nspawn --boot (systemd as
// its pid 1, so units, timers and sockets are real), and checks, from the
// installed paths only, that a pod runs, that the timer's service collects
// garbage, that the metadata service starts by socket activation and that
// nscn run in a Type=notify unit becomes ready.
//
// The tests carry the functional build tag and need root. Make sets their
// inputs:
//
//	NSCN_DEB_DIR      the .deb and .changes files of make deb
//	NSCN_IMAGES       the images of scripts/build-images.sh (busybox.aci)
//	NSCN_ROOT_SCRIPT  scripts/package-test-root.sh, which makes the root
//	NSCN_ROOT_CACHE   where that script keeps its debootstrap result
package packaging
