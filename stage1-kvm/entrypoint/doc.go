// Package entrypoint implements the kvm flavor's stage1 entrypoints on
// the host: run (Run) lays out the pod's units in its stage1 rootfs as
// the nspawn flavor does, shares that rootfs with a virtual machine
// through virtiofsd, boots the guest with qemu and relays the apps'
// output; stop (Stop) asks the guest's agent to halt the pod, or kills
// qemu; gc (GC) removes whatever a pod left (qemu, virtiofsd, the
// network).
//
// What each process is, and the files they share in the pod directory,
// are in stage1-kvm/README.md.
package entrypoint

import (
	"path/filepath"
	"strconv"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Files of the flavor in the pod directory (not in the stage1 rootfs,
// which the guest can write).
const (
	// StateDir holds the flavor's sockets, pids and the console log.
	StateDir = "kvm"
	// ControlSocket is the agent's port, served by qemu.
	ControlSocket = StateDir + "/control.sock"
	// EnterSocket is the agent's enter port, served by qemu.
	EnterSocket = StateDir + "/enter.sock"
	// StdinSocket is the app's stdin port with --interactive and no
	// terminal, served by qemu.
	StdinSocket = StateDir + "/stdin.sock"
	// IsolationFile is run's record of the run flags' isolate.Options,
	// from which enter computes the app's policy again.
	IsolationFile = StateDir + "/isolation.json"
	// RootSocket is virtiofsd's vhost-user socket.
	RootSocket = StateDir + "/root.sock"
	// VirtiofsdPIDFile and QemuPIDFile are the pids gc checks.
	VirtiofsdPIDFile = StateDir + "/virtiofsd.pid"
	QemuPIDFile      = StateDir + "/qemu.pid"
	// ConsoleLog is the guest's serial console (kernel and systemd).
	ConsoleLog = StateDir + "/console.log"
)

// Paths inside the pod's stage1 rootfs that the guest writes and the
// host reads.
const (
	// GuestReadyFile is made (a FIFO) by the guest's nscn-ready.socket once
	// every app's unit has started and the agent said READY=1.
	GuestReadyFile = "/nscn/state/guest-ready"
	// GuestStartedFile is made (a FIFO) by nscn-started.socket once every
	// app's unit has started, without waiting for the agent: run marks
	// a pod ready on it when the pod ended before GuestReadyFile came.
	GuestStartedFile = "/nscn/state/apps-started"
	// GuestEndedFile is written by the app helper that records the last
	// app's status (sdpod.Pod.EndedFile): run then ends the guest itself
	// instead of waiting for systemd's shutdown, since every status is
	// on the host already (virtio-fs writes through) and every byte an
	// app wrote has been taken by qemu (a virtio-serial write returns
	// once the host has it).
	GuestEndedFile = "/nscn/state/pod-ended"
)

// inStage1 is the host path of a pod path.
func inStage1(podDir, podPath string) string {
	return filepath.Join(podDir, stage1abi.Stage1RootfsRel, podPath)
}

// Files of a mutable pod (run --mutable, nscn app sandbox), in the pod
// directory, out of the guest's reach.
const (
	// MutableFile is run's record, for the app entrypoints, of the run
	// arguments and the files run generated from the pod's network,
	// which an added app's layout needs as a run-time app's did. Mode
	// 0600: it holds the metadata service token.
	MutableFile = StateDir + "/mutable.json"
	// SlotDir holds a file per output slot an added app holds (SlotFile).
	SlotDir = StateDir + "/slots"
	// MutableSlots is how many apps of a mutable pod have their output
	// relayed at once: each slot is a pair of virtio-serial ports
	// (stdout, stderr) that run gives qemu when the pod starts, since a
	// port cannot be added to the running guest without qemu's monitor.
	// 8 pairs and the agent's two ports stay below virtio-serial's 31.
	MutableSlots = 8
)

// SlotFile is the file that says which app holds output slot n: its
// name, written by app/add and removed by app/rm. run reads it to know
// whose log the slot's output goes to.
func SlotFile(n int) string { return SlotDir + "/" + strconv.Itoa(n) }
