// Package nspawn holds what only stage1-nspawn, the default flavor,
// declares and computes: its image name, interface version and entrypoint
// paths, and the systemd-nspawn argv (golden-tested) that boots systemd as
// the pod's pid 1 (Documentation/stage1-flavors.md). What a pod run by
// systemd shares with other flavors (the pod config, its paths, creds,
// isolation record, exit statuses) is package internal/stage1/sdpod; the
// app helper is internal/stage1/apphelper; the units internal/stage1/units.
//
// It performs no I/O and creates no processes: package entrypoint does
// the work.
package nspawn

import "github.com/nosecone/nscn/pkg/stage1abi"

// ImageName is the name of the stage1-nspawn image.
const ImageName = "nosecone.dev/nscn/stage1-nspawn"

// InterfaceVersion is the stage1 interface version stage1-nspawn
// implements: it parses every run argument up to --mds-port (version 7)
// writes the pod's ready file (version 8) when the pod's systemd reports
// that it has started the apps, and takes the metadata token from the pod
// directory (version 9), runs the pod in a user namespace of the range
// --private-users gives (version 10), and runs mutable pods (run's
// --mutable and the app entrypoints, version 11), applies a runtime
// app's restricted paths (stage1abi.AnnotationAppPaths, version 12), and
// honours an app's mount options annotation (propagation, read-only top
// or recursive, version 13), makes an app pid 1 of its PID namespace
// when it asks (stage1abi.AnnotationAppPID1, version 14), runs the apps
// in the host's PID namespace with --pid=parent (version 15), and gives
// an app a terminal when it asks (stage1abi.AnnotationAppTTY, version 16).
// scripts/build-stage1-nspawn.sh declares it in the image manifest.
const InterfaceVersion = stage1abi.InterfaceVersionAppTTY

// Entrypoint paths inside the stage1 rootfs, as the image manifest's
// annotations name them, and the helper the pod's units run.
const (
	EntrypointRun   = "/nscn/init"
	EntrypointEnter = "/nscn/enter"
	EntrypointGC    = "/nscn/gc"
	EntrypointStop  = "/nscn/stop"

	EntrypointAppAdd   = "/nscn/app-add"
	EntrypointAppStart = "/nscn/app-start"
	EntrypointAppStop  = "/nscn/app-stop"
	EntrypointAppRm    = "/nscn/app-rm"
)
