// Package stage1abi is the contract between stage0 (nscn) and a stage1
// image: the entrypoint annotations a stage1 manifest carries, the argv each
// entrypoint receives, the file names of the pod directory, and the exit
// codes. It is the only public package of Nose Cone, so that a stage1 built
// outside this tree can import it; it imports the standard library only.
//
// The prose version of this contract, for implementers in any language, is
// Documentation/stage1-abi.md. The names follow rkt's stage1 interface so
// that stage1 images are interchangeable with rkt's.
package stage1abi

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Entrypoint annotations in a stage1 image manifest. Each value is an
// absolute path inside the stage1 rootfs.
const (
	AnnotationRun      = "coreos.com/rkt/stage1/run"
	AnnotationEnter    = "coreos.com/rkt/stage1/enter"
	AnnotationGC       = "coreos.com/rkt/stage1/gc"
	AnnotationStop     = "coreos.com/rkt/stage1/stop"
	AnnotationAppAdd   = "coreos.com/rkt/stage1/app/add"
	AnnotationAppRm    = "coreos.com/rkt/stage1/app/rm"
	AnnotationAppStart = "coreos.com/rkt/stage1/app/start"
	AnnotationAppStop  = "coreos.com/rkt/stage1/app/stop"

	// AnnotationInterfaceVersion is the stage1 interface version the image
	// implements, a decimal integer.
	AnnotationInterfaceVersion = "coreos.com/rkt/stage1/interface-version"
)

// AnnotationPodRootfs in a stage1 image manifest says what stage0 makes of
// the pod's stage1 rootfs (Stage1RootfsRel): PodRootfsImage, the default
// when it is absent, is the stage1 image rendered there, private to the
// pod and writable (an overlay or a copy); PodRootfsEmpty is an empty
// directory of the pod, for a stage1 that never runs or reads its own
// files from the pod (its entrypoints run from the store's tree anyway)
// and needs the directory only for the app rootfses and its own state.
// It costs no interface version: a stage0 that does not know it renders
// the image, which such a stage1 must work with too.
const (
	AnnotationPodRootfs = "nscn.io/stage1/pod-rootfs"
	PodRootfsImage      = "image"
	PodRootfsEmpty      = "empty"
)

// ParsePodRootfs reads the value of AnnotationPodRootfs: whether the
// stage1 asks for an empty pod rootfs. An absent annotation (empty
// string) is PodRootfsImage.
func ParsePodRootfs(v string) (empty bool, err error) {
	switch v {
	case "", PodRootfsImage:
		return false, nil
	case PodRootfsEmpty:
		return true, nil
	}
	return false, fmt.Errorf("annotation %s: %q is neither %s nor %s", AnnotationPodRootfs, v, PodRootfsImage, PodRootfsEmpty)
}

// Interface versions stage0 accepts. A stage1 that declares a newer version
// is refused, since it may expect arguments this stage0 does not pass.
const (
	MinInterfaceVersion = 1
	MaxInterfaceVersion = 16
)

// CheckInterfaceVersion parses the interface-version annotation value. An
// absent annotation (empty string) means version 1, as in rkt.
func CheckInterfaceVersion(v string) (int, error) {
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("stage1 interface version %q is not a number", v)
	}
	if n < MinInterfaceVersion || n > MaxInterfaceVersion {
		return 0, fmt.Errorf("stage1 interface version %d is not supported (this nscn speaks %d to %d)", n, MinInterfaceVersion, MaxInterfaceVersion)
	}
	return n, nil
}

// Flags of the run entrypoint. Stage0 passes them as --name=value, the pod
// UUID last.
const (
	FlagDebug               = "debug"
	FlagNet                 = "net"
	FlagInteractive         = "interactive"
	FlagMDSToken            = "mds-token"
	FlagMDSPort             = "mds-port"
	FlagLocalConfig         = "local-config"
	FlagHostname            = "hostname"
	FlagDNSConfMode         = "dns-conf-mode"
	FlagDisableCapabilities = "disable-capabilities-restriction"
	FlagDisablePaths        = "disable-paths"
	FlagDisableSeccomp      = "disable-seccomp"
	FlagIPC                 = "ipc"
	FlagPID                 = "pid"
	// FlagMutable is run's flag for a pod whose apps change while it
	// runs (InterfaceVersionApps): it may start with no app, and it does
	// not end when its last app exits.
	FlagMutable = "mutable"
	// FlagAppUUID and FlagAppName are the app entrypoints' flags
	// (AnnotationAppAdd, …): the pod's UUID and the app's name.
	FlagAppUUID = "uuid"
	FlagAppName = "app"
	// EnvEnterPID names, for the app entrypoints, the pid stage0 found
	// for the pod as it passes it to enter's --pid (rkt's crossing
	// entrypoints' RKT_STAGE1_ENTERPID).
	EnvEnterPID = "RKT_STAGE1_ENTERPID"
	// FlagPrivateUsers (interface version 10) is BASE:COUNT, decimal:
	// run the pod in a user namespace whose IDs 0…COUNT-1 are the host's
	// BASE…BASE+COUNT-1. A stage1 that cannot isolate users refuses it.
	FlagPrivateUsers           = "private-users"
	FlagEnterPID               = "pid"
	FlagEnterAppName           = "appname"
	FlagStopForce              = "force"
	FlagGCLocalConfig          = "local-config"
	EnvLockFD                  = "RKT_LOCK_FD"
	EnvStage1Debug             = "NSCN_STAGE1_DEBUG"
	DefaultInteractiveTerminal = "/dev/console"
)

// Exit codes. Stage1's own failures use ExitRuntime so they stay distinct
// from the status of an app, which run passes through unchanged.
const (
	ExitRuntime = 254
)

// Pod directory layout, relative to the pod directory (the working
// directory of every entrypoint).
const (
	PodManifestFile   = "pod"    // the pod manifest (appc PodManifest JSON)
	PIDFile           = "pid"    // pid of the pod's process, written by stage1
	PPIDFile          = "ppid"   // or of its parent, when the pod's pid 1 is a child
	Stage1Dir         = "stage1" // the stage1 image: manifest and rootfs
	Stage1ManifestRel = "stage1/manifest"
	Stage1RootfsRel   = "stage1/rootfs"
	AppsInfoDir       = "appsinfo"    // per-app data stage0 leaves for stage1
	AppManifestFile   = "manifest"    // appsinfo/<app>/manifest: the app image's manifest
	AppTreeIDFile     = "treeStoreID" // appsinfo/<app>/treeStoreID: the rendered tree used
	// AppVolumeTreesFile is appsinfo/<app>/volumeTreeStoreIDs: the
	// rendered trees the app's image volumes bind (nscn cri), one key a
	// line; the pod holds them as it holds its apps' trees.
	AppVolumeTreesFile = "volumeTreeStoreIDs"
	Stage1TreeIDFile   = "stage1TreeStoreID"
	NetInfoDir         = "net-info" // per-network results written by stage1
	NetNSFile          = "netns"    // path of the pod's network namespace, written by stage1
	// MDSTokenFile holds the pod's metadata service token and a newline,
	// mode 0600, for a stage1 of InterfaceVersionMDSTokenFile or newer.
	MDSTokenFile = "mds-token"
	ExitedMarker = "exited" // written by stage1 when the pod has ended
	// ReadyFile is written by a stage1 of InterfaceVersionReady or newer
	// once the pod is ready: its apps have started, each after its
	// prepare and pre-start steps. It is a regular file, replaced
	// atomically; its content (a time, for people) is not read: its
	// existence is the signal and its modification time when it came.
	ReadyFile = "ready"
	// CgroupFile optionally holds the pod's cgroup: one absolute path,
	// as /proc/PID/cgroup names it (the unified hierarchy's, else the
	// name=systemd one's), and a newline, written atomically before
	// the pid. The cgroup holds every process of the pod for its whole
	// life, however the processes move below it. Without the file,
	// stage0 takes the cgroup the pod's process is in at the moment.
	CgroupFile = "cgroup"
)

// Stage2Dir is the directory of an app inside the stage1 rootfs.
func Stage2Dir(app string) string {
	return filepath.Join(Stage1RootfsRel, "opt", "stage2", app)
}

// AppRootfs is the path of an app's rootfs relative to the pod directory.
func AppRootfs(app string) string { return filepath.Join(Stage2Dir(app), "rootfs") }

// AppStatusFile is where stage1 records an app's exit status (a decimal
// number and a newline), relative to the pod directory.
func AppStatusFile(app string) string {
	return filepath.Join(Stage1RootfsRel, "rkt", "status", app)
}

// AppOutputFIFO is the FIFO, relative to the pod directory, where a
// stage1 that has them copies what app writes on stream
// (LogStreamStdout or LogStreamStderr) while a reader has it open when
// the app starts: `nscn cri`'s log writer reads it. Optional, and no
// interface version: stage0 looks for the FIFO (stage1-nspawn makes
// both when it adds an app).
func AppOutputFIFO(app, stream string) string {
	return filepath.Join(Stage1RootfsRel, "nscn", "io", app, stream)
}

// AnnotationAppStdin on an app of the pod manifest, with the value
// "fifo", asks a stage1 for an app/add'ed app whose stdin is the FIFO
// AppInputFIFO: the stage1 makes it when it adds the app, and the app's
// start waits until the FIFO has a writer. Optional, and no interface
// version: a stage1 without it leaves the FIFO absent, which stage0 sees.
const AnnotationAppStdin = "nscn.io/app/stdin"

// AppInputFIFO is the FIFO, relative to the pod directory, that a stage1
// honouring AnnotationAppStdin opens as the app's stdin.
func AppInputFIFO(app string) string {
	return filepath.Join(Stage1RootfsRel, "nscn", "io", app, "stdin")
}

// AnnotationAppTTY on an app of the pod manifest, with the value "true",
// asks a stage1 of InterfaceVersionAppTTY or newer for an app whose
// stdin, stdout and stderr are the slave of a new pseudo-terminal, its
// controlling terminal (the CRI's tty). The stage1 holds the master: what
// the app writes there comes out on its stdout (AppOutputFIFO), what its
// input FIFO carries (AnnotationAppStdin) goes in, and the end of that
// input is the terminal's end-of-file character. The stage1 makes the
// FIFO AppResizeFIFO, whose frames (EncodeWinsize) set the terminal's
// size. "false", or no annotation, is no terminal; any other value fails
// the app (ParseAppTTY).
const AnnotationAppTTY = "nscn.io/app/tty"

// ParseAppTTY reads the value of AnnotationAppTTY.
func ParseAppTTY(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("annotation %s: %q is neither true nor false", AnnotationAppTTY, v)
}

// AppResizeFIFO is the FIFO, relative to the pod directory, whose frames
// set the size of the terminal of an app of AnnotationAppTTY.
func AppResizeFIFO(app string) string {
	return filepath.Join(Stage1RootfsRel, "nscn", "io", app, "resize")
}

// WinsizeFrameLen is the length of a frame of AppResizeFIFO: the rows,
// then the columns, each a big-endian uint16. A frame is written with
// one write(2), which a FIFO keeps whole (it is under PIPE_BUF).
const WinsizeFrameLen = 4

// EncodeWinsize is the frame of AppResizeFIFO for a terminal of rows by
// cols characters.
func EncodeWinsize(rows, cols uint16) [WinsizeFrameLen]byte {
	var b [WinsizeFrameLen]byte
	binary.BigEndian.PutUint16(b[0:2], rows)
	binary.BigEndian.PutUint16(b[2:4], cols)
	return b
}

// ParseWinsize reads a frame of AppResizeFIFO. A size of zero rows or
// columns is refused: no client has such a terminal.
func ParseWinsize(b []byte) (rows, cols uint16, err error) {
	if len(b) != WinsizeFrameLen {
		return 0, 0, fmt.Errorf("terminal size frame of %d bytes, not %d", len(b), WinsizeFrameLen)
	}
	rows, cols = binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	if rows == 0 || cols == 0 {
		return 0, 0, fmt.Errorf("terminal size %dx%d", rows, cols)
	}
	return rows, cols, nil
}

// AppInfoDir is stage0's per-app directory relative to the pod directory.
func AppInfoDir(app string) string { return filepath.Join(AppsInfoDir, app) }

// Interface versions that introduced run arguments. A stage1 declares the
// highest one whose arguments it parses; stage0 passes no argument newer than
// the declared version.
const (
	InterfaceVersionHostname    = 2 // --hostname
	InterfaceVersionDisable     = 3 // --disable-capabilities-restriction, --disable-paths, --disable-seccomp
	InterfaceVersionDNSConf     = 4 // --dns-conf-mode
	InterfaceVersionLocalConfig = 5 // gc's --local-config
	InterfaceVersionIPC         = 6 // --ipc
	InterfaceVersionMDSPort     = 7 // --mds-port
	// InterfaceVersionReady brings no argument: a stage1 that declares it
	// writes ReadyFile when the pod is ready. Below it, stage0 takes a
	// pod that runs and has recorded its pid as ready.
	InterfaceVersionReady = 8
	// InterfaceVersionMDSTokenFile brings no argument either: stage0
	// hands a stage1 that declares it the metadata service token in
	// MDSTokenFile (mode 0600) instead of --mds-token, whose value any
	// local user could read in /proc/PID/cmdline.
	InterfaceVersionMDSTokenFile = 9
	InterfaceVersionPrivateUsers = 10 // --private-users
	// InterfaceVersionApps brings mutable pods: run's --mutable and the
	// app entrypoints (AnnotationAppAdd, AnnotationAppStart,
	// AnnotationAppStop, AnnotationAppRm), each called with
	// [--debug] --uuid=UUID --app=NAME (app/add also with the
	// --disable-* flags run takes). A stage1 declaring it must carry all
	// four annotations for stage0 to use them.
	InterfaceVersionApps = 11
	// InterfaceVersionAppPaths brings no argument: a stage1 that
	// declares it applies a runtime app's AnnotationAppPaths. stage0
	// refuses an app that carries it for an older stage1, which would
	// ignore it.
	InterfaceVersionAppPaths = 12
	// InterfaceVersionMountOptions brings no argument: a stage1 that
	// declares it honours an app's AnnotationMountOptions. stage0 refuses
	// an app that carries the annotation for an older stage1, which would
	// mount its volumes otherwise than asked.
	InterfaceVersionMountOptions = 13
	// InterfaceVersionAppPID1 brings no argument: a stage1 that declares
	// it honours an app's AnnotationAppPID1. stage0 refuses an app that
	// carries the annotation for an older stage1, which would start the
	// app under an init of its own.
	InterfaceVersionAppPID1 = 14
	// InterfaceVersionPID brings run's --pid (PIDParent: the apps in
	// run's own PID namespace, the host's). stage0 passes the flag only
	// to a stage1 that declares it.
	InterfaceVersionPID = 15
	// InterfaceVersionAppTTY brings no argument: a stage1 that declares
	// it honours an app's AnnotationAppTTY. stage0 refuses an app that
	// carries the annotation for an older stage1, which would start it
	// without a terminal.
	InterfaceVersionAppTTY = 16
)

// AnnotationAppPID1 on an app of the pod manifest, with the value
// "true", asks the stage1 to make the app's own process pid 1 of its PID
// namespace, with no init of the stage1's before it (the CRI's CONTAINER
// PID mode, what docker and runc do by default). The app then gets no
// signal it has no handler for (not even SIGTERM at a stop: the stop
// kills it once its timeout is out) and reaps what is left to it. The
// value "false", or no annotation, keeps the stage1's default; any other
// value fails the app (ParseAppPID1). A stage1 of InterfaceVersionAppPID1
// or newer honours it.
const AnnotationAppPID1 = "nscn.io/app/pid1"

// ParseAppPID1 parses the value of AnnotationAppPID1.
func ParseAppPID1(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("annotation %s: %q is neither true nor false", AnnotationAppPID1, v)
}

// AnnotationAppPaths is a runtime app's annotation in the pod manifest
// that names paths of the app's filesystem to mask or make read-only, on
// top of the stage1's own restricted /proc and /sys paths: a JSON object
// {"masked": [PATH, ...], "readOnly": [PATH, ...]} of absolute, clean
// paths (the CRI's masked_paths and readonly_paths). A stage1 applies
// them as it applies its own, for the app and for every process entered
// into it, even with --disable-paths: someone asked for them by name. A
// stage1 of InterfaceVersionAppPaths or newer applies it; stage0 refuses
// an app that carries it for an older one, which would ignore it. A value
// that does not parse fails the app.
const AnnotationAppPaths = "nscn.io/app/restricted-paths"

// AppStartedFile is where a stage1 of InterfaceVersionApps records, when
// its app/start entrypoint has started an app, the pid of the app's main
// process as the host sees it (a decimal number and a newline; 0 when it
// could not tell), relative to the pod directory. Its modification time is
// when the app started. app/start removes the app's AppStatusFile first.
func AppStartedFile(app string) string {
	return filepath.Join(Stage1RootfsRel, "rkt", "started", app)
}

// DefaultMDSPort is the TCP port of the metadata service that a stage1
// assumes when it gets --mds-token without --mds-port (a stage0 older than
// interface version 7, or a stage1 that declares less): rkt's port.
const DefaultMDSPort = 18112

// Values of the run entrypoint's --net flag that name no CNI network.
// Anything else is a comma-separated list of network names.
const (
	NetDefault = "default"
	NetHost    = "host"
	NetNone    = "none"
)

// Values of the run entrypoint's --ipc flag. An absent flag means IPCAuto:
// whatever the flavor isolates by default.
const (
	IPCAuto    = "auto"
	IPCPrivate = "private"
	IPCParent  = "parent"
)

// Values of the run entrypoint's --pid flag (InterfaceVersionPID), in
// the style of --ipc. An absent flag means PIDAuto: whatever the flavor
// isolates by default. PIDParent puts every app's process in the PID
// namespace run was started in (the host's, for nscn run), where its
// getpid() is the pid the host sees.
const (
	PIDAuto    = "auto"
	PIDPrivate = "private"
	PIDParent  = "parent"
)

// The run entrypoint's --dns-conf-mode value is a comma-separated list of
// key=mode pairs, for example "resolv=host,hosts=default".
const (
	DNSConfResolv = "resolv" // /etc/resolv.conf of the apps
	DNSConfHosts  = "hosts"  // /etc/hosts of the apps

	DNSModeDefault = "default" // the flavor's own behavior
	DNSModeHost    = "host"    // bind-mount the host's file
	DNSModeStage0  = "stage0"  // expose the file stage0 wrote (see Stage0ResolvConfRel, Stage0HostsRel)
	DNSModeNone    = "none"    // leave the app's file alone
)

// Files stage0 writes for DNSModeStage0, relative to the pod directory.
const (
	Stage0ResolvConfRel = "stage1/rootfs/etc/rkt-resolv.conf"
	Stage0HostsRel      = "stage1/rootfs/etc/rkt-hosts"
)

// SignalStatusBase is added to the signal number when an app is killed by a
// signal: the status stage1 records (AppStatusFile) and run exits with is
// SignalStatusBase+signo, as a shell reports it.
const SignalStatusBase = 128

// EmptyVolumesDir holds, relative to the pod directory, the host directories
// a stage1 creates for volumes of kind "empty". They live as long as the pod
// directory; the gc entrypoint removes them.
const EmptyVolumesDir = "stage1/rootfs/volumes"

// EmptyVolumeDir is the directory backing the "empty" volume name, relative
// to the pod directory.
func EmptyVolumeDir(name string) string { return filepath.Join(EmptyVolumesDir, name) }

// App logs. A stage1 that records what the apps write creates LogsDir in
// the pod directory before it starts any app and appends to one file per
// app, AppLogFile, while the pod runs; the files stay until the pod is
// removed. A stage1 that records nothing leaves LogsDir absent, and
// "nscn logs" says so. Recording logs is optional and needs no interface
// version: stage0 only reads the files.
//
// Each line of a log file is one record (the CRI logging format):
//
//	<time> <stream> <tag> <content>\n
//
// time is an RFC 3339 time with nanoseconds (time.RFC3339Nano) when the
// stage1 read the bytes; stream is LogStreamStdout or LogStreamStderr;
// tag is LogTagFull when the app wrote a newline after content (the
// newline is not part of content) and LogTagPartial when it did not (yet):
// the next record of the same stream continues the same line. content is
// the app's bytes unchanged and never contains a newline. Records are
// appended whole (one write(2) each, O_APPEND), so a reader may see a
// last line without its newline only while it is being written.
const (
	LogsDir         = "logs"
	LogStreamStdout = "stdout"
	LogStreamStderr = "stderr"
	LogTagFull      = "F"
	LogTagPartial   = "P"
)

// AppLogFile is the log file of an app, relative to the pod directory.
func AppLogFile(app string) string { return filepath.Join(LogsDir, app+".log") }

// The pod's journal. A stage1 that keeps what the apps write in a systemd
// journal (journald in the pod: stage1-nspawn) creates JournalDir in the
// pod directory before it starts any app, and its journald writes the
// journal files in JournalDir/MACHINE-ID (MachineID). stage0 reads them
// with journalctl --directory: each app's records carry
// _SYSTEMD_UNIT=app-NAME.service and SYSLOG_IDENTIFIER=NAME, and a
// PRIORITY of JournalPriorityStdout for what the app wrote on its stdout,
// JournalPriorityStderr on its stderr. The stage1 may also link the
// host's /var/log/journal/MACHINE-ID to that directory (so that the
// host's journalctl finds it); its gc entrypoint then removes the link.
// The journal, like LogsDir, needs no interface version: stage0 only
// reads it, and falls back to LogsDir when it is absent.
const (
	JournalDir            = "journal"
	JournalPriorityStdout = 6 // LOG_INFO
	JournalPriorityStderr = 3 // LOG_ERR
)

// MachineID is the systemd machine ID (machine-id(5)) of the pod with
// the given UUID: its 32 hex digits, lower case, without the dashes, as
// rkt derived it.
func MachineID(uuid string) string {
	return strings.ToLower(strings.ReplaceAll(uuid, "-", ""))
}

// Entries stage0 keeps in the pod directory for its own use, relative to the
// pod directory. A stage1 must neither read nor write them.
const (
	// CreatedFile records when stage0 created the pod: an RFC 3339 time
	// with nanoseconds, and a newline.
	CreatedFile = "created"
	// OverlayDir holds the upper and work directories of the overlayfs
	// mounts stage0 makes for the stage1 and app rootfses.
	OverlayDir = "overlay"
	// MDSSocketFile names, for a pod stage0 registered with the metadata
	// service, the service's registration socket (a path and a newline),
	// so that gc and rm unregister the pod from the same service.
	MDSSocketFile = "mds-socket"
	// AppsLockFile is the lock stage0 takes, exclusively, around every
	// change of a mutable pod's apps: the pod manifest is replaced while
	// the pod runs, when its own lock is the stage1's.
	AppsLockFile = "apps.lock"
	// PrivateUsersFile records the ID range stage0 allocated to a pod
	// run with --private-users (BASE:COUNT and a newline), written under
	// the data directory's PrivateUsersLock when the pod is prepared:
	// run-prepared passes it on, and no other pod gets an overlapping
	// range while the pod directory exists.
	PrivateUsersFile = "private-users"
)

// PrivateUsersLock is the lock file, relative to the data directory's
// pods directory, that stage0 holds while it picks a pod's ID range and
// records it in the pod's PrivateUsersFile.
const PrivateUsersLock = "private-users.lock"
