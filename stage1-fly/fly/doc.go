// Package fly holds the pure logic of the stage1-fly flavor, the chroot
// stage1 for privileged system apps: it parses the entrypoints' argv,
// selects the pod's single app, computes the app's environment (appc
// spec/ace.md, "Execution Environment"), resolves its user and groups from
// the app's own /etc/passwd and /etc/group (spec/aci.md, "user, group"),
// and computes the mount plan (volumes per spec/pods.md and the fly system
// mounts) as data.
//
// It performs no mounts and starts no processes: package entrypoint
// executes the plan through a Mounter and runs the app. Apart from
// LoadPod, which reads the pod manifest, everything here works on values
// and fs.FS views, needs no privileges, and is unit-tested without root.
//
// What fly isolates, and what it does not, is described in
// Documentation/stage1-fly.md.
package fly

import "github.com/nosecone/nscn/pkg/stage1abi"

// InterfaceVersion is the stage1 interface version stage1-fly implements
// and declares in its image manifest: it parses every run argument up to
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

// ContainerEnv is the value of the "container" environment variable every
// app process gets (ace.md: the name of the executor).
const ContainerEnv = "nscn"

// DefaultPath is the PATH an app gets when its environment sets none
// (ace.md, "Execution Environment").
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
