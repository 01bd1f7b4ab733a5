// Package fly holds what only the stage1-fly flavor, the chroot stage1
// for privileged system apps, declares: its interface version, its
// entrypoint paths, and its rule of one app per pod. The argv parsing,
// app spec and mount plan it shares with the other flavors live in
// internal/stage1 (abiargs, appspec, appmount).
//
// What fly isolates, and what it does not, is described in
// Documentation/stage1-fly.md.
package fly

import "github.com/nosecone/nscn/pkg/stage1abi"

// ImageName is the name of the stage1-fly image.
const ImageName = "nosecone.dev/nscn/stage1-fly"

// InterfaceVersion is the stage1 interface version stage1-fly implements
// and declares in its image manifest (scripts/build-stage1-fly.sh): it parses every run argument up to
// --ipc, introduced in version 6. It stays below
// stage1abi.InterfaceVersionReady: fly has no init that could say when the
// app has started, so stage0 takes a fly pod as ready once it runs and
// has recorded its pid.
const InterfaceVersion = stage1abi.InterfaceVersionIPC

// Entrypoint paths inside the stage1-fly rootfs, as the image manifest
// annotations name them.
const (
	EntrypointRun   = "/fly/run"
	EntrypointEnter = "/fly/enter"
	EntrypointGC    = "/fly/gc"
	EntrypointStop  = "/fly/stop"
)

// EmptyPodRootfs is what stage1-fly declares in its image manifest
// (stage1abi.AnnotationPodRootfs, scripts/build-stage1-fly.sh): each pod's
// stage1 rootfs is an empty directory, not the image rendered there. Fly's
// entrypoints run from the store's tree and read nothing of their own
// from the pod; the directory holds the app's rootfs mount and the app's
// status file, so stage0 spares every pod an overlay mount and its four
// directories.
const EmptyPodRootfs = true
