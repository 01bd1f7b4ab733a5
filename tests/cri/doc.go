//go:build functional

// Package cri runs critest, the Kubernetes CRI validation suite of
// sigs.k8s.io/cri-tools, against nscn cri and against Debian's containerd
// with the same selection, offline, and compares each runtime's results
// with the specs it passed before (make cri-test; Documentation/cri.md,
// section "critest").
//
// The images critest pulls are stand-ins built here from Debian's busybox
// (the package busybox), two programs of the host's Debian packages (ipcs,
// pgrep) and a small program (standin/), served under their real
// names (registry.k8s.io, gcr.io, k8s.gcr.io) by Debian's docker-registry
// on 127.0.0.1:443, inside mount, network and IPC namespaces of the test's
// own where /etc/hosts and the CA bundle say so. Nothing of the host's
// /etc or network changes. It needs root.
package cri
