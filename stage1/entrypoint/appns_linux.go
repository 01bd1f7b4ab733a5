package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1-fly/inroot"
	"github.com/nosecone/nscn/stage1-fly/podmount"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// Each app, and each of its event handlers, runs in a PID namespace of
// its own (issue #11): with the pod's shared one, an app running as the
// same user with the same capabilities as another app of the pod read
// that app's files through /proc/PID/root. Three processes do it:
//
//	shim: the unit's main process,  init: pid 1 of the app's     app (modeExecIn)
//	the helper, in the pod's PID ns PID namespace (modeInit)
//	  join the app's cgroups
//	  lock the thread,
//	  unshare(CLONE_NEWPID)
//	  start /proc/self/exe ───────▶ non-dumpable; catch every
//	                                signal; reap orphans
//	  start /proc/self/exe with CLONE_NEWNS (|CLONE_NEWCGROUP) ─────▶ fd 3: initConfig (JSON)
//	  write initConfig on fd 3 ───────────────────────────────────▶ fd 4: sync (close-on-exec)
//	                                                                 mounts slaves; open the creds
//	                                                                 record; a procfs of this PID
//	                                                                 namespace on the rootfs's
//	                                                                 /proc, its restricted paths;
//	                                                                 pivot_root; creds, record;
//	                                                                 look the program up
//	  EOF on fd 4: READY=1 ◀──────────────────────────────────────── isolate.Exec (one error
//	                                                                 line instead)
//	  wait for the app; SIGKILL the init (the kernel kills what
//	  is left of the namespace); exit as the app did
//
// Both children are the shim's: the thread that unshared CLONE_NEWPID
// forks them into the new namespace, the first as its pid 1. So the shim
// waits for the app itself, and the init's Go start runs beside the
// app's instead of before it (on this path a Go process start is the
// main cost: tens of milliseconds on a small host).
//
// Why not make the app pid 1 of its namespace, as docker and podman do by
// default? A PID namespace's init gets no signal it has no handler for,
// not even from itself: the apps' signal semantics would change (an app
// that does not catch SIGTERM would survive systemd's stop and be killed
// after TimeoutStopSec; `kill -9 $$` in a shell app would do nothing; ^C
// on the console would not end it), and an app that does not reap its
// children would leave zombies. With an init of our own, the app is an
// ordinary process that gets what it got before: systemd's SIGTERM on
// stop (KillMode=control-group signals every process of the unit, the
// app and its children included), the console's signals (the terminal
// signals its foreground process group, which the three share). So the
// shim and the init forward nothing: they catch every signal and drop
// it, so that none kills them first (the Go runtime handles most signals
// itself, and by default dies of them), and SIGKILL from systemd ends
// them with the rest of the unit. Forwarding would deliver the same
// signal to the app two or three times.
//
// The init stays in the pod's mount namespace and root (it reads and
// mounts nothing, and enter, which looks for a process whose root is the
// app's, never takes it for the app). The app sees it as pid 1 but cannot
// reach its root: it is not dumpable, so /proc/1/root needs
// CAP_SYS_PTRACE, which no app has by default.
//
// Why a shim at all? The unit's main process cannot enter a PID
// namespace of its own (a process's PID namespace never changes), and
// systemd reads the app's status from the main process: the shim mirrors
// it (mirrorStatus), so EXIT_CODE and EXIT_STATUS, which the reap mode
// records, are as before.

// initConfig is what the shim hands the process that becomes the app on
// fd 3.
type initConfig struct {
	Argv  []string `json:"argv"`
	AsApp bool     `json:"asApp,omitempty"`
}

// exitInfo is how a process ended: its exit code, or the signal that
// killed it (Signal non-zero).
type exitInfo struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

// Descriptors of the app process's contract.
const (
	nsConfigFD = 3 // read end of the config pipe (initConfig)
	nsSyncFD   = 4 // write end of the sync pipe: EOF at the exec, or one error line
)

// execApp runs the app (or its event handler, o.handler) confined by
// the app's policy in a PID and mount namespace of its own, as the app's
// user for the app itself, as root for a handler, and returns the status
// to exit with (the app's, see mirrorStatus). Handlers get the app's
// policy too (capabilities, no_new_privs, seccomp, oom_score_adj,
// cgroup): the spec only says they run as root, and a handler must not be
// a way around the app's restrictions. See Documentation/isolators.md.
func execApp(ctx context.Context, log *slog.Logger, app *nspawn.App, o execOpts) (int, error) {
	s := app.Spec
	argv := s.Exec
	switch o.handler {
	case ModePreStart:
		argv = s.PreStart
	case ModePostStop:
		argv = s.PostStop
	}
	if len(argv) == 0 {
		return 0, errdefs.InvalidArgument("app %s: nothing to run", s.Name)
	}
	if o.asApp && app.Stdin != "" {
		if err := openStdin(app.Stdin); err != nil {
			return 0, err
		}
	}
	if err := joinAppCgroup(app); err != nil {
		return 0, err
	}
	var notify *net.UnixConn
	if o.notifyReady {
		var err error
		if notify, err = dialNotify(os.Getenv("NOTIFY_SOCKET")); err != nil {
			return 0, fmt.Errorf("app %s: %w", s.Name, err)
		}
		defer func() { _ = notify.Close() }()
	}
	// Every signal is caught and dropped (see above), from before the
	// init exists until the helper mirrors the app's status.
	defer dropSignals()()
	cfg, err := json.Marshal(initConfig{Argv: argv, AsApp: o.asApp})
	if err != nil {
		return 0, fmt.Errorf("encode app config: %w", err)
	}
	start := time.Now()
	// Go's os package checks once, on its first use of pidfds, that they
	// work, by starting a child that exits at once: started after the
	// unshare below, that child would be the new namespace's pid 1, and
	// its exit would end the namespace (the next fork fails with ENOMEM).
	// FindProcess makes it check now.
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Release()
	}
	// Never unlocked: the thread's children are born in the app's PID
	// namespace, and the helper exits when the app has.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
		return 0, &os.SyscallError{Syscall: "unshare(CLONE_NEWPID)", Err: err}
	}
	// No Pdeathsig on either child: each sees a parent pid of 0 (its
	// parent is outside its namespace), which the Go runtime takes for a
	// dead parent. When the shim dies, systemd kills the unit's cgroup.
	initCmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{nspawn.AppHelper, modeInit, s.Name},
		Env: []string{}, Stderr: os.Stderr,
	}
	log.DebugContext(ctx, "start app init")
	if err := initCmd.Start(); err != nil {
		return 0, fmt.Errorf("app %s: start the init of its pid namespace: %w", s.Name, err)
	}
	initDone := false
	defer func() {
		if !initDone {
			_ = initCmd.Process.Kill()
			_ = initCmd.Wait()
		}
	}()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create app config pipe: %w", err)
	}
	defer func() { _ = cfgW.Close() }()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return 0, fmt.Errorf("create app sync pipe: %w", err)
	}
	defer func() { _ = syncR.Close() }()
	flags := uintptr(unix.CLONE_NEWNS)
	if o.unified {
		flags |= unix.CLONE_NEWCGROUP
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{nspawn.AppHelper, modeExecIn, s.Name},
		Env:   []string{},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles:  []*os.File{cfgR, syncW},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: flags},
	}
	log.DebugContext(ctx, "start app", "argv", argv)
	err = cmd.Start()
	_ = cfgR.Close()
	_ = syncW.Close()
	if err != nil {
		return 0, fmt.Errorf("app %s: start it in its pid namespace: %w", s.Name, err)
	}
	// The config fits in the pipe's buffer.
	_, werr := cfgW.Write(cfg)
	_ = cfgW.Close()
	line, rerr := io.ReadAll(io.LimitReader(syncR, 64<<10))
	if len(line) == 0 && rerr == nil && werr == nil {
		// The shim's two forks, the app process's start and its work up
		// to the exec: what the app's containment costs now.
		log.DebugContext(ctx, "containment: app pid namespace entered", "took", time.Since(start))
		if notify != nil {
			if _, err := notify.Write([]byte("READY=1")); err != nil {
				log.WarnContext(ctx, "notify the pod's systemd", "err", err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("app %s: wait for it: %w", s.Name, err)
	}
	// The app has ended: the init goes, and with it what the app left in
	// its namespace.
	_ = initCmd.Process.Kill()
	ierr := initCmd.Wait()
	initDone = true
	switch {
	case len(line) > 0:
		return 0, errors.New(strings.TrimSpace(string(line)))
	case rerr != nil:
		return 0, fmt.Errorf("app %s: read its sync pipe: %w", s.Name, rerr)
	case werr != nil:
		return 0, fmt.Errorf("app %s: send its config: %w", s.Name, werr)
	}
	if ws, ok := initCmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Exited() {
		// Ended on its own, so it killed the app's namespace.
		return 0, fmt.Errorf("app %s: the init of its pid namespace exited with status %d: %w", s.Name, ws.ExitStatus(), ierr)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return mirrorStatus(waitExit(ws)), nil
}

// dropSignals catches every signal but SIGKILL and SIGSTOP and drops it,
// until the function it returns is called (see execApp for why).
func dropSignals() (stop func()) {
	c := make(chan os.Signal, 16)
	signal.Notify(c)
	go func() {
		for range c {
			// dropped
		}
	}()
	return func() { signal.Stop(c) }
}

// waitExit is how the process of ws ended.
func waitExit(ws syscall.WaitStatus) exitInfo {
	if ws.Signaled() {
		return exitInfo{Signal: int(ws.Signal())}
	}
	return exitInfo{Code: ws.ExitStatus()}
}

// mirrorStatus makes the helper end as e says the app did, so that
// systemd reports the app's status as the main process's: for a death
// by a signal, the helper dies of that signal when it can (raisable),
// and otherwise exits with stage1abi.SignalStatusBase plus the signal,
// which nspawn.ExitStatus maps to the same status. It returns the exit
// status for main.
func mirrorStatus(e exitInfo) int {
	if e.Signal == 0 {
		return e.Code
	}
	sig := unix.Signal(e.Signal)
	if raisable(sig) {
		signal.Reset(sig)
		_ = unix.Kill(unix.Getpid(), sig)
		time.Sleep(time.Second) // the signal ends the process meanwhile
	}
	return stage1abi.SignalStatusBase + e.Signal
}

// raisable reports whether the helper can die of sig by sending it to
// itself after signal.Reset: the Go runtime restores the default action
// of these on its way out, while it turns the others (SIGQUIT, SIGABRT,
// the synchronous faults) into a crash report and exit status 2.
func raisable(sig unix.Signal) bool {
	switch sig {
	case unix.SIGKILL, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM:
		return true
	}
	return false
}

// appInit is the init of the app's PID namespace (see execApp): it makes
// itself non-dumpable, drops every signal and reaps the namespace's
// orphans until it is killed. It returns only on failure.
func appInit(ctx context.Context, log *slog.Logger) error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return &os.SyscallError{Syscall: "prctl(PR_SET_DUMPABLE)", Err: err}
	}
	c := make(chan os.Signal, 16)
	signal.Notify(c)
	log.DebugContext(ctx, "app init started")
	for sig := range c {
		if sig != unix.SIGCHLD {
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
		}
	}
	return nil
}

// execInNamespace is the process that becomes the app (modeExecIn), in
// the app's PID namespace and a mount namespace of its own: it makes
// the app's /proc, enters the app's root, resolves the credentials and
// the program there and calls isolate.Exec. On failure it writes one
// line on the sync pipe for the shim and returns the error.
func execInNamespace(ctx context.Context, log *slog.Logger, name string) error {
	if err := unix.CloseRange(nsConfigFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	sync := os.NewFile(nsSyncFD, "app sync pipe")
	err := prepareAndExec(ctx, log, name)
	_, _ = sync.WriteString(ErrorLine(fmt.Errorf("app %s: %w", name, err)) + "\n")
	return err
}

// prepareAndExec is execInNamespace's work; it returns only on failure.
func prepareAndExec(ctx context.Context, log *slog.Logger, name string) error {
	cfgFile := os.NewFile(nsConfigFD, "app config")
	var cfg initConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read app config: %w", err)
	}
	if len(cfg.Argv) == 0 {
		return errdefs.InvalidArgument("nothing to run")
	}
	pod, err := nspawn.LoadPod(nspawn.PodConfigFile)
	if err != nil {
		return err
	}
	app, err := pod.AppByName(name)
	if err != nil {
		return err
	}
	s := app.Spec
	log = log.With("app", name)
	start := time.Now()
	// The namespace's mounts are copies of the pod's: slaves, so that
	// what the app mounts stays its own and what the pod mounts later
	// still reaches it, and so that the detach of the old root does not
	// propagate back.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "make mounts slave", Path: "/", Err: err}
	}
	// The record of the app's credentials, for enter: opened while the
	// pod's state directory is still in view.
	var record *os.File
	if cfg.AsApp {
		if record, err = createCredsRecord(s.Name); err != nil {
			return err
		}
		defer func() { _ = record.Close() }()
	}
	if err := mountProc(ctx, log, app.Plan.RootFS, app.Policy); err != nil {
		return err
	}
	if err := pivotInto(app.Plan.RootFS); err != nil {
		return fmt.Errorf("enter its root: %w", err)
	}
	// The rootfs is now the root: symlinks in it cannot lead out of it.
	fsys := os.DirFS("/")
	creds := fly.Creds{}
	if cfg.AsApp {
		if creds, err = fly.ResolveCreds(fsys, s.User, s.Group, s.SupplementaryGIDs); err != nil {
			return err
		}
		if err := writeCredsRecord(record, creds); err != nil {
			return err
		}
	}
	if err := fly.CheckDir(fsys, s.WorkingDir); err != nil {
		return err
	}
	path, err := fly.LookPath(fsys, cfg.Argv[0], fly.Getenv(s.Env, "PATH"), s.WorkingDir)
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "containment: app root and /proc entered", "took", time.Since(start))
	log.DebugContext(ctx, "exec", "path", path, "uid", creds.UID, "gid", creds.GID, "groups", creds.Groups)
	return isolate.Exec(app.Policy, isolate.ExecConfig{
		Path: path, Args: cfg.Argv, Env: s.Env, Dir: s.WorkingDir,
		Creds: isolate.Creds{UID: creds.UID, GID: creds.GID, Groups: creds.Groups},
	})
}

// mountProc replaces the pod's /proc in the app's rootfs with a procfs
// of the app's PID namespace, and restricts its paths of p again (the
// restrictions prepareApp stacked went with the old /proc). It runs in
// the init's mount namespace before the pivot, with the pod's /dev/null
// at hand; every path is resolved in the rootfs. A rootfs without /proc
// gets none.
func mountProc(ctx context.Context, log *slog.Logger, rootfs string, p *isolate.Policy) error {
	root, err := inroot.OpenRoot(rootfs)
	if err != nil {
		return fmt.Errorf("open app rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	old, err := inroot.Open(root, "/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the app's /proc: %w", err)
	}
	log.DebugContext(ctx, "detach the pod's procfs", "path", "/proc")
	err = unix.Unmount(inroot.FDPath(old), unix.MNT_DETACH)
	_ = old.Close()
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return &os.PathError{Op: "detach the pod's procfs", Path: "/proc", Err: err}
	}
	dir, err := inroot.Open(root, "/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("open the app's /proc: %w", err)
	}
	log.DebugContext(ctx, "mount a procfs of the app's pid namespace", "path", "/proc")
	err = podmount.Mount("proc", inroot.FDPath(dir), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "", "/proc")
	_ = dir.Close()
	if err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	return restrictPaths(ctx, log, root, procPaths(p.Paths))
}

// procPaths is the part of p below /proc.
func procPaths(p isolate.Paths) isolate.Paths {
	in := func(paths []string) []string {
		var out []string
		for _, s := range paths {
			if s == "/proc" || strings.HasPrefix(s, "/proc/") {
				out = append(out, s)
			}
		}
		return out
	}
	return isolate.Paths{ReadOnly: in(p.ReadOnly), Masked: in(p.Masked)}
}
