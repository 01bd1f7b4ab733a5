// Package sdpod holds the pure logic of a pod whose init is systemd, one
// unit per app (package units writes them), as the nspawn flavor runs it
// and as any flavor that boots systemd as the pod's pid 1 does:
//
//   - it parses the run entrypoint's argv and refuses what such a pod
//     cannot provide (--ipc=parent with --private-users);
//   - it computes the Pod, the data run hands to the helpers inside the pod
//     (/nscn/pod.json): per app, its process spec (environment, user, exec)
//     and its mount plan in the pod's paths, and the host paths that must
//     be bound into the pod for them;
//   - it builds the apps' AC_METADATA_URL from --mds-token and --mds-port
//     (MetadataURL);
//   - it turns what systemd tells an ExecStopPost= command about the main
//     process ($EXIT_CODE, $EXIT_STATUS) into the status stage1 records.
//
// It performs no I/O except LoadPod and ReadMDSToken and creates no
// processes. It runs in stage1, on the host side (run) and inside the pod
// (the app helper, package apphelper), and needs no privileges.
package sdpod

import "path"

// The helpers the pod's units run, inside the pod.
const (
	// AppHelper runs inside the pod, from the app's units: "run" (or
	// "prepare", "pre-start" and "exec"), "post-stop" and "reap" modes
	// (see package entrypoint).
	AppHelper = "/nscn/app"
	// AppInit is pid 1 of each app's PID namespace, which the app
	// helper starts (see package entrypoint).
	AppInit = "/nscn/app-init"
)

// Paths inside the stage1 rootfs (the pod's root) that run and the app
// helper share. They are not part of the stage1 ABI.
const (
	// PodConfigFile is the Pod run writes for the helpers.
	PodConfigFile = "/nscn/pod.json"
	// IODir holds each app's FIFOs (AppStdoutFIFO, AppStderrFIFO,
	// AppStdinFIFO).
	IODir = "/nscn/io"
	// FirstFailureFile holds the status of the first app that failed:
	// the pod's exit status. The first writer wins (link(2)).
	FirstFailureFile = "/nscn/state/first-failure"
	// MaxFirstFailure bounds what run reads of FirstFailureFile: a
	// status, a newline.
	MaxFirstFailure = 64
	// KilledFile is written by stop --force before it kills the pod.
	KilledFile = "/nscn/state/killed"
	// CredsDir holds each app's credentials as its helper resolved them
	// when the app started (AppCreds, one JSON file per app): enter
	// takes the app's user from there, never from the app's rootfs,
	// which the app can write. No app can reach it (its root is its
	// own rootfs).
	CredsDir = "/nscn/state/creds" //nolint:gosec // G101: a directory of uids and gids, no secret
	// HostIPCNS is, in a pod run with --ipc=parent (Pod.HostIPC), a
	// bind of the IPC namespace run was started in (the host's), which
	// run makes on the host before systemd-nspawn starts; the app
	// helper joins it for every app process. systemd-nspawn always
	// gives the pod's systemd an IPC namespace of its own, and setns
	// into an IPC namespace has no ancestry rule. No app can reach it
	// (its root is its own rootfs).
	HostIPCNS = "/nscn/ns/ipc"
	// HostPIDSocket is, in a pod run with --pid=parent (Pod.HostPID),
	// the unix socket (SOCK_SEQPACKET) of run's spawner: the app helper
	// asks it to start its app in run's PID namespace (the host's), which
	// no process of the pod can enter (package hostpid). run binds it on
	// the host before systemd-nspawn starts. No app can reach it (its
	// root is its own rootfs).
	HostPIDSocket = "/nscn/ns/hostpid.sock"
	// HostBindDir is where systemd-nspawn binds the host paths the apps'
	// mounts need (volumes, the host's /etc/hosts), one numbered entry
	// each.
	HostBindDir = "/nscn/host"
	// UnitDir is where run writes the pod's systemd units.
	UnitDir = "/etc/systemd/system"
	// StatusDir is the directory of stage1abi.AppStatusFile, in the pod.
	StatusDir = "/rkt/status"
	// VolumesDir holds the empty volumes (stage1abi.EmptyVolumesDir), in
	// the pod.
	VolumesDir = "/volumes"
	// Stage2Dir is the parent of the apps' directories, in the pod.
	Stage2Dir = "/opt/stage2"
	// Journald and Journalctl are the image's journal programs
	// (scripts/fetch-systemd.sh).
	Journald   = "/usr/lib/systemd/systemd-journald"
	Journalctl = "/usr/bin/journalctl"
	// JournalMountDir is where run binds the pod directory's
	// stage1abi.JournalDir: the pod's persistent journal.
	JournalMountDir = "/var/log/journal"
	// MachineIDFile holds the pod's machine ID (stage1abi.MachineID),
	// which its systemd and journald take.
	MachineIDFile = "/etc/machine-id"
)

// WritableDirs are the directories of the pod's root that stay writable
// inside the pod, whose root is otherwise read-only (ArgvConfig.ReadOnly):
// the helpers' state (first failure, kill marker, credentials), the
// apps' statuses, and the empty volumes. None of them is reachable from
// an app but the volumes it mounts.
var WritableDirs = []string{path.Dir(FirstFailureFile), StatusDir, VolumesDir}

// AppStdoutFIFO and AppStderrFIFO carry an app's output: its unit (or,
// with the pod's journal, its helper) writes to them, and run copies them
// to its own stdout and stderr (and, without the journal, to the app's
// log file, stage1abi.AppLogFile).
func AppStdoutFIFO(app string) string { return IODir + "/" + app + "/stdout" }

// AppStderrFIFO is the stderr twin of AppStdoutFIFO.
func AppStderrFIFO(app string) string { return IODir + "/" + app + "/stderr" }

// AppStdinFIFO carries run's stdin to an --interactive app when run's
// stdin is not a terminal; the app helper opens it as the app's stdin.
func AppStdinFIFO(app string) string { return IODir + "/" + app + "/stdin" }

// AppResizeFIFO carries the terminal size frames of an app with a
// terminal (App.TTY) to its helper: stage1abi.AppResizeFIFO in the pod.
func AppResizeFIFO(app string) string { return IODir + "/" + app + "/resize" }

// ContainerEnv is the value of the "container" variable of the apps: the
// name of the executor (ace.md), as in every Nose Cone flavor.
const ContainerEnv = "nscn"
