package apphelper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Modes of the app helper (sdpod.AppHelper), argv[1]; argv[2] is the
// app's name. The units (package units) run them.
const (
	ModePrepare  = "prepare"   // ExecStartPre=: seal the pod's root
	ModePreStart = "pre-start" // ExecStartPre=: the pre-start handler, as root
	ModeExec     = "exec"      // ExecStart= after ExecStartPre= prepare: become the app
	ModeRun      = "run"       // ExecStart=: prepare, then exec, in one process (no pre-start handler)
	ModePostStop = "post-stop" // ExecStopPost=: the post-stop handler, as root
	ModeReap     = "reap"      // ExecStopPost=: record the status, end the pod if due
)

// Hidden modes of the app helper: the processes execApp starts in the
// app's PID namespace (see execApp). Only the helper itself runs them.
const (
	modeExecIn = "ns-exec" // the process that becomes the app (or handler)
)

// App runs one mode of the app helper inside the pod, as root, in the
// pod's namespaces. It returns the status the helper must exit with: in
// the exec, run and handler modes the app's (or handler's), mirrored;
// otherwise 0. A death by signal is mirrored by dying of that signal,
// where the Go runtime allows it (see mirrorSignal).
func App(ctx context.Context, log *slog.Logger, mode, name string) (int, error) {
	switch mode {
	case modeExecIn:
		if err := execInNamespace(ctx, log, name); err != nil {
			return stage1abi.ExitRuntime, nil // the shim reports the error
		}
		return 0, nil
	case ModeHostExec:
		if err := hostExec(ctx, log, name); err != nil {
			return stage1abi.ExitRuntime, nil // the spawner reports the error
		}
		return 0, nil
	}
	pod, err := sdpod.LoadPod(sdpod.PodConfigFile)
	if err != nil {
		return 0, err
	}
	app, err := pod.AppByName(name)
	if err != nil {
		return 0, err
	}
	log = log.With("app", name, "mode", mode)
	// The caller may have made the timeline, to print it where its log
	// goes (HelperStderr); otherwise it goes to stderr.
	tl := timeline.FromContext(ctx)
	if tl == nil {
		tl = timeline.New("app:"+name, time.Duration(pod.TimelineBase), os.Stderr)
		ctx = timeline.NewContext(ctx, tl)
	}
	tl.Mark(mode + "-helper-started")
	switch mode {
	case ModePrepare:
		return 0, sealPod(ctx, log)
	case ModeRun:
		if err := sealPod(ctx, log); err != nil {
			return 0, err
		}
	}
	switch mode {
	case ModeRun, ModeExec, ModePreStart, ModePostStop:
		// Each of these processes makes the app's tree in a mount
		// namespace of its own (privmnt_linux.go).
		if err := mountApp(ctx, log, pod, app); err != nil {
			return 0, err
		}
	}
	switch mode {
	case ModePrepare:
		return 0, nil
	case ModeExec:
		return execApp(ctx, log, app, execOpts{asApp: true, unified: pod.CgroupUnified, hostIPC: pod.HostIPC, hostPID: pod.HostPID, exited: endOfApp(ctx, log, pod, app)})
	case ModeRun:
		// An app that speaks sd_notify says READY=1 itself.
		return execApp(ctx, log, app, execOpts{asApp: true, unified: pod.CgroupUnified, hostIPC: pod.HostIPC, hostPID: pod.HostPID, notifyReady: !app.Notify, exited: endOfApp(ctx, log, pod, app)})
	case ModePreStart:
		return execApp(ctx, log, app, execOpts{handler: ModePreStart, unified: pod.CgroupUnified, hostIPC: pod.HostIPC})
	case ModePostStop:
		return execApp(ctx, log, app, execOpts{handler: ModePostStop, unified: pod.CgroupUnified, hostIPC: pod.HostIPC})
	case ModeReap:
		return 0, reapApp(ctx, log, pod, name)
	default:
		return 0, errdefs.InvalidArgument("unknown app helper mode %q", mode)
	}
}

// sealPod seals the pod's root (sealRoot) in the pod's mount
// namespace, before any app process exists: the run and prepare modes
// call it, the first helper of the pod to get there does it.
func sealPod(ctx context.Context, log *slog.Logger) error {
	start := time.Now()
	if err := sealRoot(ctx, log); err != nil {
		return err
	}
	// make bench reads the containment's cost from these lines.
	log.DebugContext(ctx, "containment: pod root sealed", "took", time.Since(start))
	timeline.FromContext(ctx).Mark("pod-root-sealed")
	return nil
}

// mountApp moves the helper into a mount namespace of its own
// (privateMounts), binds the app's rootfs onto itself there and makes
// the mounts of its plan inside it. The tree lives as long as the
// helper's namespace (and the app's, a copy of it): the pod's
// namespace, and its systemd, never see it.
func mountApp(ctx context.Context, log *slog.Logger, pod *sdpod.Pod, app *sdpod.App) error {
	p := app.Plan
	// Where a lookup mounts what it crosses (the kvm flavor's virtio-fs
	// submounts, announce_submounts), the app's rootfs must be mounted
	// in the pod's namespace before the copy: a first lookup in the
	// helper's namespace would make a mount of its own there, with a
	// superblock (and a device number) of its own, and enter, which
	// looks for a process whose root is the rootfs as the pod's
	// namespace sees it, would not take the app's for it.
	if err := touchMount(p.RootFS); err != nil {
		return err
	}
	rest, shared := splitShared(p)
	clones, err := privateMounts(func() ([]*os.File, error) { return cloneSharedSources(shared) })
	if err != nil {
		return err
	}
	defer closeAll(clones)
	byTarget := make(map[string]*os.File, len(clones))
	for i, c := range clones {
		byTarget[shared[i].Target] = c
	}
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	log.DebugContext(ctx, "bind rootfs onto itself", "rootfs", p.RootFS)
	if err := podmount.Mount(p.RootFS, p.RootFS, "", unix.MS_BIND|unix.MS_REC, "", p.RootFS); err != nil {
		return err
	}
	root, err := inroot.OpenRoot(p.RootFS)
	if err != nil {
		return fmt.Errorf("open app rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	// A rootfs that stage0 copied (no overlayfs) is a directory of the
	// pod's root, sealed read-only above, and the bind took that flag:
	// the app's root is writable (its mount points are made below)
	// unless it asks otherwise at the end.
	if err := unix.MountSetattr(int(root.Fd()), "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return &os.PathError{Op: "mount_setattr (clear rdonly)", Path: p.RootFS, Err: err}
	}
	// Every mount of the namespace is a slave or private, and so is
	// every mount made below: nothing propagates out of the tree but
	// through the shared mounts' clones (shared_linux.go).
	m := procMountPoint{Next: appmount.LoggingMounter{Next: podmount.InRoot{Root: root, Log: log, Clones: byTarget}, Log: log}, root: root, log: log}
	if err := appmount.Apply(ctx, m, rest); err != nil {
		return err
	}
	if err := makeDevLinks(root); err != nil {
		return err
	}
	if err := makeEtcFiles(ctx, log, root); err != nil {
		return err
	}
	if err := appmount.Apply(ctx, m, appmount.Plan{RootFS: p.RootFS, Mounts: shared}); err != nil {
		return err
	}
	if app.Policy != nil {
		// Those below /proc are for each process's own procfs (mountProc).
		_, rest := procPaths(app.Policy.Paths)
		if err := restrictPaths(ctx, log, root, rest); err != nil {
			return err
		}
	}
	mountCgroup := mountAppCgroup
	if pod.CgroupUnified {
		mountCgroup = mountAppCgroupV2
	}
	if err := mountCgroup(ctx, log, root, app); err != nil {
		return err
	}
	if p.ReadOnlyRoot {
		return podmount.SetMountAttrs(root, unix.MOUNT_ATTR_RDONLY, false, "/")
	}
	return nil
}

// procMountPoint makes the mount point of the plan's procfs in an app's
// rootfs, but mounts nothing there: each process of the app mounts a
// procfs of its own PID namespace on it (mountProc), which would first
// have to detach one mounted here, and a detach waits for an RCU grace
// period (milliseconds on a busy host) on the app's way to its exec.
// The other mounts go to Next.
type procMountPoint struct {
	Next appmount.Mounter
	root *os.File
	log  *slog.Logger
}

// Mount implements appmount.Mounter.
func (m procMountPoint) Mount(ctx context.Context, mt appmount.Mount) error {
	if mt.Kind != appmount.KindFS || mt.FSType != "proc" || mt.Target != "/proc" {
		return m.Next.Mount(ctx, mt)
	}
	m.log.DebugContext(ctx, "make the mount point of the app's procfs", "target", mt.Target)
	dir, err := inroot.MkdirAll(m.root, mt.Target, 0o755)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	return dir.Close()
}

// makeDevLinks makes sdpod.AppDevLinks in the app's /dev, the tmpfs of
// sdpod.AppDev.
func makeDevLinks(root *os.File) error {
	dev, err := inroot.Open(root, "/dev", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open the app's /dev: %w", err)
	}
	defer func() { _ = dev.Close() }()
	for name, target := range sdpod.AppDevLinks {
		if err := unix.Symlinkat(target, int(dev.Fd()), name); err != nil && !errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "symlink", Path: "/dev/" + name, Err: err}
		}
	}
	return nil
}

// makeEtcFiles gives the app the /etc files rkt's apps had: /etc/mtab, a
// symlink to ../proc/self/mounts (unless the image has an /etc/mtab of
// its own), which mount, df and friends read; and /etc/hostname, holding
// the pod's hostname (prepareApp runs in the pod's UTS namespace), which
// replaces the image's. An /etc/hostname that cannot be replaced (a
// directory) is left as it is, with a warning.
func makeEtcFiles(ctx context.Context, log *slog.Logger, root *os.File) error {
	etc, err := inroot.MkdirAll(root, "/etc", 0o755)
	if err != nil {
		return fmt.Errorf("open the app's /etc: %w", err)
	}
	defer func() { _ = etc.Close() }()
	if err := unix.Symlinkat("../proc/self/mounts", int(etc.Fd()), "mtab"); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "symlink", Path: "/etc/mtab", Err: err}
	}
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read the pod's hostname: %w", err)
	}
	const tmp = ".hostname.nscn"
	fd, err := unix.Openat(int(etc.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: "/etc/" + tmp, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/etc/"+tmp)
	_, err = f.WriteString(hostname + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(int(etc.Fd()), tmp, int(etc.Fd()), "hostname")
	}
	if err != nil {
		_ = unix.Unlinkat(int(etc.Fd()), tmp, 0)
		log.WarnContext(ctx, "the app keeps its image's /etc/hostname", "error", err)
	}
	return nil
}

// execOpts are the variants of execApp.
type execOpts struct {
	// asApp: as the app's user and groups, with its stdin; otherwise
	// as root (an event handler).
	asApp bool
	// handler is the handler's mode (ModePreStart, ModePostStop) when
	// not asApp.
	handler string
	// unified (sdpod.Pod.CgroupUnified): the process also gets a cgroup
	// namespace of its own, rooted at its unit's cgroup, so that the
	// app's /proc/self/cgroup says "0::/", as the cgroup2 mount that
	// prepareApp put on its /sys/fs/cgroup shows it.
	unified bool
	// hostIPC (sdpod.Pod.HostIPC): the process is born in the IPC
	// namespace of sdpod.HostIPCNS, the host's, not the pod's.
	hostIPC bool
	// hostPID (sdpod.Pod.HostPID): run's spawner starts the app in the
	// host's PID namespace (execOnHost); its handlers stay in the pod.
	hostPID bool
	// notifyReady: tell the unit's service manager (NOTIFY_SOCKET,
	// Type=notify) READY=1 once the app's process has exec'd, so that
	// the pod is ready only when its mounts are made and the app is
	// started.
	notifyReady bool
	// tty: the process gets a terminal (sdpod.App.TTY), set by
	// execApp with stdio.
	tty bool
	// stdio are the descriptors the process gets as its 0, 1 and 2;
	// set by execApp.
	stdio [3]uintptr
	// listenFDs and listenNames are the sockets systemd passed for the
	// app (initConfig.ListenFDs); set by execApp.
	listenFDs   int
	listenNames string
	// exited, when not nil, is called with the app's status (as
	// sdpod.ExitStatus makes it from what systemd reports) and its
	// output's copies (nil without the pod's journal) once the app and
	// every process of its namespace have ended and its output is
	// copied, before the helper exits as the app did (endOfApp).
	exited func(status int, out *appOutput)
}

// openStdin makes the FIFO p, which run feeds from its own stdin
// (--interactive without a terminal), the helper's fd 0. The open waits
// for run's writer.
func openStdin(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Dup3(fd, 0, 0); err != nil {
		return &os.SyscallError{Syscall: "dup3", Err: err}
	}
	return nil
}

// Signals to the pod's systemd (systemd(1)): SIGRTMIN+4 starts
// poweroff.target, which stops every unit in order (the other apps get
// SIGTERM and their post-stop handlers run); SIGRTMIN+14 powers off at
// once, stopping nothing, which is all that is left to do once every app
// has exited and been reaped.
const (
	sigPoweroff          = unix.Signal(38)
	sigPoweroffImmediate = unix.Signal(48)
)

// endOfApp is the execOpts.exited of the helper that runs app: it
// records the app's status and ends the pod when that is due (endApp),
// so that the pod's end does not wait for systemd to start the reap
// mode (ExecStopPost=), a second helper process, after the app. nil, and
// the reap mode does it alone, for an app with a post-stop handler (the
// pod must not end before the handler has run, and the status is
// recorded after it) and in a mutable pod. The reap mode still runs
// when the pod goes on, and records the same status again: it is what
// records it when the helper could not (a start that failed, a helper
// killed before the app ended).
func endOfApp(ctx context.Context, log *slog.Logger, pod *sdpod.Pod, app *sdpod.App) func(int, *appOutput) {
	if pod.Mutable || len(app.Spec.PostStop) > 0 {
		return nil
	}
	return func(status int, out *appOutput) {
		log.DebugContext(ctx, "app exited", "status", status)
		timeline.FromContext(ctx).Mark("app-exited")
		if podJournal(pod) {
			// Before the status: the helper of the pod's last app
			// ends the pod once every app has one, and needs no
			// sync of journald for what this one wrote.
			sctx, cancel := context.WithTimeout(ctx, journalSyncTimeout)
			err := helperJournalRead(sctx, out)
			cancel()
			if err != nil {
				log.WarnContext(ctx, "the pod's journal may miss the app's last lines", "err", err)
			}
		}
		immediate, err := endApp(ctx, log, pod, app.Spec.Name, status)
		if err != nil {
			// The reap mode tries again once the helper has exited.
			log.WarnContext(ctx, "record the app's status", "err", err)
			return
		}
		if immediate {
			// The pod's systemd is on its way to systemd-shutdown,
			// which ends every process: the helper waits for that
			// rather than exit first, which would have systemd,
			// before it reads the signal, start the unit's
			// ExecStopPost= commands, the reap mode's process among
			// them, on the pod's way out. Should the end not come,
			// the helper exits after endWait, and the reap mode ends
			// the pod again. The signals the helper drops while the
			// app runs (execApp) include systemd-shutdown's SIGTERM,
			// which must end it now.
			signal.Reset(unix.SIGTERM)
			time.Sleep(endWait)
		}
	}
}

// endWait is how long the helper of the pod's last app waits for the
// pod's end (endOfApp): systemd-shutdown's SIGTERM comes within
// milliseconds.
const endWait = 10 * time.Second

// reapApp records the app's status from what systemd says about its main
// process and ends the pod when that is due (endApp).
func reapApp(ctx context.Context, log *slog.Logger, pod *sdpod.Pod, name string) error {
	status, err := sdpod.ExitStatus(os.Getenv("EXIT_CODE"), os.Getenv("EXIT_STATUS"))
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "app exited", "status", status, "result", os.Getenv("SERVICE_RESULT"))
	timeline.FromContext(ctx).Mark("app-exited")
	if recorded, ok := helperRecordedStatus(pod, name); ok && recorded != status {
		// systemd's word is about the helper's own end, not the app's:
		// a helper that recorded the app's status and then asked for
		// the pod's clean poweroff can be stopped (SIGTERM, 143) before
		// it exits, and that must not overwrite the app's status.
		log.DebugContext(ctx, "keep the status the helper recorded", "recorded", recorded, "unit", status)
		status = recorded
	}
	if !pod.Mutable && podJournal(pod) {
		if _, err := os.Lstat(filepath.Join(sdpod.StatusDir, name)); err != nil {
			// The helper did not record the status (a post-stop
			// handler ran first, or the helper failed): what it, the
			// handlers and this process wrote to journald is
			// synced before the status, which the last app's helper
			// takes as its sign (helperJournalRead).
			sctx, cancel := context.WithTimeout(ctx, journalSyncTimeout)
			err := syncJournal(sctx, JournalVarlinkSocket)
			cancel()
			if err != nil {
				log.WarnContext(ctx, "the pod's journal may miss the app's last lines", "err", err)
			}
		}
	}
	_, err = endApp(ctx, log, pod, name, status)
	return err
}

// helperJournalRead waits until journald has every record of what the
// helper and its app wrote (out: the app's copies, nil without them):
// until journald has read the streams (waitStreamRead) or, when that
// does not tell, it has synced (syncJournal).
func helperJournalRead(ctx context.Context, out *appOutput) error {
	complete := true
	if out != nil {
		var err error
		if complete, err = out.drained(ctx); err != nil {
			return err
		}
	}
	if err := unitStreamRead(ctx); err != nil {
		return err
	}
	if !complete {
		return syncJournal(ctx, JournalVarlinkSocket)
	}
	return nil
}

// helperRecordedStatus returns the status the helper that ran app
// recorded (endOfApp), if it is the one that records it: in a pod that
// is not mutable, for an app without a post-stop handler. Elsewhere the
// reap mode is the recorder, and a file there may be an earlier start's.
func helperRecordedStatus(pod *sdpod.Pod, name string) (int, bool) {
	if pod.Mutable {
		return 0, false
	}
	app, err := pod.AppByName(name)
	if err != nil || len(app.Spec.PostStop) > 0 {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(sdpod.StatusDir, name)) //nolint:gosec // G304: the pod's status directory
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, false
	}
	return n, true
}

// endApp records status as the app's; the first failure also becomes
// the pod's status. When the app failed, or every app has a status, it
// ends the pod, unless the pod is mutable; immediate says it was the
// last and powered the pod off at once.
func endApp(ctx context.Context, log *slog.Logger, pod *sdpod.Pod, name string, status int) (immediate bool, err error) {
	if err := atomicfile.Write(sdpod.StatusDir, name, []byte(strconv.Itoa(status)+"\n")); err != nil {
		return false, err
	}
	if pod.Mutable {
		// A mutable pod (nscn app sandbox) lives until it is stopped,
		// whatever its apps do: they come and go (app/start, app/stop,
		// app/rm), and none makes the pod's status.
		return false, nil
	}
	if status != 0 {
		if err := recordFirstFailure(status); err != nil {
			return false, err
		}
	}
	allDone := true
	for _, a := range pod.Names() {
		if _, err := os.Lstat(filepath.Join(sdpod.StatusDir, a)); err != nil {
			allDone = false
			break
		}
	}
	if allDone && pod.EndedFile != "" {
		if err := atomicfile.Write(filepath.Dir(pod.EndedFile), filepath.Base(pod.EndedFile), []byte("\n")); err != nil {
			return false, err
		}
	}
	sig := unix.Signal(0)
	switch {
	case allDone:
		sig = sigPoweroffImmediate
	case status != 0:
		sig = sigPoweroff
	}
	if sig == sigPoweroffImmediate && podJournal(pod) && podPreStart(pod) {
		// The immediate poweroff stops no unit: journald, which the
		// apps do not wait for, must have read what they wrote
		// before it gets systemd-shutdown's SIGTERM. Every app's
		// status was recorded once journald had read what its
		// helper and its app wrote (endOfApp, reapApp); a pre-start
		// handler's output, in a stream the helper never had, needs
		// the sync.
		sctx, cancel := context.WithTimeout(ctx, journalSyncTimeout)
		err := syncJournal(sctx, JournalVarlinkSocket)
		cancel()
		if err != nil {
			log.WarnContext(ctx, "the pod's journal may miss the apps' last lines", "err", err)
		}
	}
	if sig == sigPoweroffImmediate {
		dropAskPasswordWatch(ctx, log, askPasswordDir)
	}
	if sig != 0 {
		log.DebugContext(ctx, "end the pod", "signal", int(sig))
		if err := unix.Kill(1, sig); err != nil {
			return false, &os.SyscallError{Syscall: "kill", Err: err}
		}
	}
	if sig == sigPoweroffImmediate && podJournal(pod) {
		// journald's offlining while the pod's systemd frees its
		// manager (startJournalSync).
		sent, err := startJournalSync("/proc")
		log.DebugContext(ctx, "ask the pod's journal to sync", "asked", sent, "err", err)
	}
	return sig == sigPoweroffImmediate, nil
}

// askPasswordDir is where password agents post their queries
// (systemd-ask-password(1)); the pod's systemd watches it with an
// inotify descriptor of its own until its start-up jobs are done.
const askPasswordDir = "/run/systemd/ask-password" //nolint:gosec // G101: a directory's path, no credential

// dropAskPasswordWatch removes dir, askPasswordDir, just before the immediate
// poweroff, which takes the pod's systemd's inotify watch on it with the
// directory. The manager closes that descriptor once its start-up jobs
// are done (when it says READY=1), or else as it frees itself on the way
// out; and closing an inotify descriptor that still holds a watch waits
// for an SRCU grace period (fsnotify's mark reaper), 8 to 16 ms here. A
// short app's pod ends before its systemd is done starting (journald's
// start is still under way when /bin/true has exited), so that close is
// one of the three on the way to systemd-shutdown. Without its watch the
// descriptor closes at once: the kernel frees the watch with the
// directory, and the reaper's grace period for it runs with the one of
// the manager's first close. Nothing in a pod asks for passwords; a
// failure (the directory already gone, a query in it) is of no
// consequence.
func dropAskPasswordWatch(ctx context.Context, log *slog.Logger, dir string) {
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		log.DebugContext(ctx, "remove the ask-password directory", "err", err)
	}
}

// journalSyncTimeout bounds endApp's wait for the pod's journald.
const journalSyncTimeout = 10 * time.Second

// podJournal reports whether an app of pod writes to the pod's journald.
func podJournal(pod *sdpod.Pod) bool {
	for _, a := range pod.Apps {
		if a.Journal {
			return true
		}
	}
	return false
}

// podPreStart reports whether an app of pod has a pre-start handler.
func podPreStart(pod *sdpod.Pod) bool {
	for _, a := range pod.Apps {
		if len(a.Spec.PreStart) > 0 {
			return true
		}
	}
	return false
}

// recordFirstFailure writes status to sdpod.FirstFailureFile unless an
// earlier failure did: the file is linked into place, which fails if it
// exists.
func recordFirstFailure(status int) error {
	dir := filepath.Dir(sdpod.FirstFailureFile)
	f, err := os.CreateTemp(dir, ".failure-*")
	if err != nil {
		return fmt.Errorf("record first failure: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.WriteString(strconv.Itoa(status) + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("record first failure: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record first failure: %w", err)
	}
	if err := os.Link(f.Name(), sdpod.FirstFailureFile); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("record first failure: %w", err)
	}
	return nil
}

// knownModes lists the helper modes, for the usage message.
var knownModes = []string{ModePrepare, ModePreStart, ModeExec, ModeRun, ModePostStop, ModeReap}

// IsAppMode reports whether s names a helper mode, hidden ones included.
func IsAppMode(s string) bool {
	return slices.Contains(knownModes, s) || s == modeExecIn || s == ModeHostExec
}
