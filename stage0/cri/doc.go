// Package cri is nscn's Container Runtime Interface server: the gRPC
// services a kubelet (or crictl, or critest) talks to over a unix socket,
// implemented on the image store and the pods of one data directory.
//
// There is no state in memory that matters: images are the store's,
// sandboxes and containers are pods on disk, so `nscn cri` can be
// restarted at any time (Documentation/cri.md).
//
// The image service maps the store's OCI images onto CRI's model, where an
// image is its config (the ID is "sha256:" and the config digest, as
// containerd has it) and carries every tag and digest that names it. A
// pull goes through stage0's fetcher, so a tag is taken only when the
// operator's registries.d trusts its repository (internal/regtrust).
package cri
