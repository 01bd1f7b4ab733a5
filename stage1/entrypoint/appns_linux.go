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
//	shim: the unit's main process,     init: pid 1 of the app's         app: pid 2
//	the helper in the pod's PID ns     PID namespace (modeInit)          (modeExecIn)
//	  join the app's cgroups
//	  clone /proc/self/exe with
//	  CLONE_NEWPID|CLONE_NEWNS
//	  (|CLONE_NEWCGROUP) ─────────────▶ fd 3: initConfig (JSON), fd 4:
//	  write initConfig on fd 3 ───────▶ initMsg lines back
//	                                    mounts slaves; open the creds
//	                                    record and the helper binary; a
//	                                    fresh /proc (this PID namespace)
//	                                    and its restricted paths in the
//	                                    rootfs; pivot_root into it; creds,
//	                                    record; look the program up
//	                                    start the binary (fd 5) ────────▶ fd 3: execConfig, fd 4:
//	                                    write execConfig on fd 3 ───────▶ sync (close-on-exec)
//	                                    EOF on fd 4 ◀──────────────────── isolate.Exec (one
//	  READY=1 ◀────── {"ready":true} ◀─                                  error line instead)
//	                                    reap every child; when the app
//	  mirror its status ◀ {"exit":…} ◀── ends, report its status, exit
//	                                    (the kernel kills the rest of
//	                                    the namespace)
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
// Why a shim at all? The unit's main process cannot enter a PID
// namespace of its own (a process's PID namespace never changes), and
// systemd reads the app's status from the main process: the shim mirrors
// it (mirrorStatus), so EXIT_CODE and EXIT_STATUS, which the reap mode
// records, are as before.

// initConfig is what the shim hands the init on fd 3.
type initConfig struct {
	Argv  []string `json:"argv"`
	AsApp bool     `json:"asApp,omitempty"`
}

// initMsg is one line the init sends the shim on fd 4: the app (or
// handler) was exec'd, the init failed (one error line), or the app's
// status.
type initMsg struct {
	Ready bool      `json:"ready,omitempty"`
	Err   string    `json:"err,omitempty"`
	Exit  *exitInfo `json:"exit,omitempty"`
}

// exitInfo is how a process ended: its exit code, or the signal that
// killed it (Signal non-zero).
type exitInfo struct {
	Code   int `json:"code"`
	Signal int `json:"signal,omitempty"`
}

// execConfig is what the init hands the process that becomes the app.
type execConfig struct {
	Policy *isolate.Policy    `json:"policy"`
	Exec   isolate.ExecConfig `json:"exec"`
}

// Descriptors of the init's and the app process's contracts.
const (
	nsConfigFD = 3 // read end of the config pipe (initConfig, execConfig)
	nsMsgFD    = 4 // write end: initMsg lines (init), the sync pipe (app)
	nsExeFD    = 5 // the helper binary, for the init's child
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
		return 0, fmt.Errorf("encode app init config: %w", err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create app init config pipe: %w", err)
	}
	defer func() { _ = cfgW.Close() }()
	msgR, msgW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return 0, fmt.Errorf("create app init message pipe: %w", err)
	}
	defer func() { _ = msgR.Close() }()
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS)
	if o.unified {
		flags |= unix.CLONE_NEWCGROUP
	}
	start := time.Now()
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{nspawn.AppHelper, modeInit, s.Name},
		Env:   []string{},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles: []*os.File{cfgR, msgW},
		// No Pdeathsig: the init sees a parent pid of 0 (its parent is
		// outside its namespace), which the Go runtime takes for a dead
		// parent. When the shim dies, systemd kills the unit's cgroup.
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: flags},
	}
	log.DebugContext(ctx, "start app init", "argv", argv)
	err = cmd.Start()
	_ = cfgR.Close()
	_ = msgW.Close()
	if err != nil {
		return 0, fmt.Errorf("app %s: start its init: %w", s.Name, err)
	}
	// The config fits in the pipe's buffer: no need to write it
	// concurrently with reading the messages.
	_, werr := cfgW.Write(cfg)
	_ = cfgW.Close()
	var failed string
	var exit *exitInfo
	dec := json.NewDecoder(msgR)
	for {
		var m initMsg
		if err := dec.Decode(&m); err != nil {
			break // EOF: the init has ended
		}
		switch {
		case m.Ready:
			// The shim's fork and the init's work are what the app's
			// containment costs now.
			log.DebugContext(ctx, "containment: app pid namespace entered", "took", time.Since(start))
			if notify != nil {
				if _, err := notify.Write([]byte("READY=1")); err != nil {
					log.WarnContext(ctx, "notify the pod's systemd", "err", err)
				}
			}
		case m.Err != "":
			failed = m.Err
		case m.Exit != nil:
			exit = m.Exit
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("app %s: wait for its init: %w", s.Name, err)
	}
	switch {
	case failed != "":
		return 0, errors.New(failed)
	case exit != nil:
		return mirrorStatus(*exit), nil
	case werr != nil:
		return 0, fmt.Errorf("app %s: send its init config: %w", s.Name, werr)
	}
	// The init ended without a word: killed, say. Its own status then.
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

// appInit is the init of the app's PID namespace (see execApp). It
// reports its own failure to the shim and returns
// stage1abi.ExitRuntime; otherwise it returns once the app has ended.
func appInit(ctx context.Context, log *slog.Logger, name string) (int, error) {
	if err := unix.CloseRange(nsConfigFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 0, &os.SyscallError{Syscall: "close_range", Err: err}
	}
	msgs := os.NewFile(nsMsgFD, "app init messages")
	defer func() { _ = msgs.Close() }()
	send := func(m initMsg) {
		b, _ := json.Marshal(m)
		_, _ = msgs.Write(append(b, '\n'))
	}
	// A PID namespace's init gets the signals it has a handler for,
	// which the Go runtime installs for most, dying of them by default:
	// catch them all, and drop them.
	defer dropSignals()()
	log.DebugContext(ctx, "app init started")
	appPID, err := startInNamespace(ctx, log, name)
	if err != nil {
		send(initMsg{Err: ErrorLine(fmt.Errorf("app %s: %w", name, err))})
		return stage1abi.ExitRuntime, nil
	}
	send(initMsg{Ready: true})
	e, err := reapUntil(appPID)
	if err != nil {
		send(initMsg{Err: ErrorLine(fmt.Errorf("app %s: %w", name, err))})
		return stage1abi.ExitRuntime, nil
	}
	send(initMsg{Exit: &e})
	return 0, nil
}

// startInNamespace prepares the init's mount namespace and root and
// starts the process that becomes the app; it returns its pid once the
// exec happened.
func startInNamespace(ctx context.Context, log *slog.Logger, name string) (int, error) {
	cfgFile := os.NewFile(nsConfigFD, "app init config")
	var cfg initConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return 0, fmt.Errorf("read init config: %w", err)
	}
	pod, err := nspawn.LoadPod(nspawn.PodConfigFile)
	if err != nil {
		return 0, err
	}
	app, err := pod.AppByName(name)
	if err != nil {
		return 0, err
	}
	s := app.Spec
	start := time.Now()
	// The namespace's mounts are copies of the pod's: slaves, so that
	// what the app mounts stays its own and what the pod mounts later
	// still reaches it, and so that the detach of the old root does not
	// propagate back.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return 0, &os.PathError{Op: "make mounts slave", Path: "/", Err: err}
	}
	// Opened while the pod's root is still in view: the record of the
	// app's credentials, for enter; the helper binary, to start the
	// app's process from.
	var record *os.File
	if cfg.AsApp {
		if record, err = createCredsRecord(s.Name); err != nil {
			return 0, err
		}
		defer func() { _ = record.Close() }()
	}
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("open the helper binary: %w", err)
	}
	defer func() { _ = exe.Close() }()
	if err := mountProc(ctx, log, app.Plan.RootFS, app.Policy); err != nil {
		return 0, err
	}
	if err := pivotInto(app.Plan.RootFS); err != nil {
		return 0, fmt.Errorf("enter its root: %w", err)
	}
	// The rootfs is now the root: symlinks in it cannot lead out of it.
	fsys := os.DirFS("/")
	creds := fly.Creds{}
	if cfg.AsApp {
		if creds, err = fly.ResolveCreds(fsys, s.User, s.Group, s.SupplementaryGIDs); err != nil {
			return 0, err
		}
		if err := writeCredsRecord(record, creds); err != nil {
			return 0, err
		}
	}
	if err := fly.CheckDir(fsys, s.WorkingDir); err != nil {
		return 0, err
	}
	path, err := fly.LookPath(fsys, cfg.Argv[0], fly.Getenv(s.Env, "PATH"), s.WorkingDir)
	if err != nil {
		return 0, err
	}
	log.DebugContext(ctx, "containment: app root and /proc entered", "took", time.Since(start))
	log.DebugContext(ctx, "exec", "path", path, "uid", creds.UID, "gid", creds.GID, "groups", creds.Groups)
	return startExecIn(ctx, log, name, exe, execConfig{Policy: app.Policy, Exec: isolate.ExecConfig{
		Path: path, Args: cfg.Argv, Env: s.Env, Dir: s.WorkingDir,
		Creds: isolate.Creds{UID: creds.UID, GID: creds.GID, Groups: creds.Groups},
	}})
}

// startExecIn starts the helper binary exe as the process that becomes
// the app (modeExecIn) with cfg, and returns its pid once it exec'd.
func startExecIn(ctx context.Context, log *slog.Logger, name string, exe *os.File, cfg execConfig) (int, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return 0, fmt.Errorf("encode exec config: %w", err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create exec config pipe: %w", err)
	}
	defer func() { _ = cfgW.Close() }()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return 0, fmt.Errorf("create exec sync pipe: %w", err)
	}
	defer func() { _ = syncR.Close() }()
	// The binary is outside the app's root: run it through its
	// descriptor, which the exec resolves before it closes any.
	p, err := os.StartProcess(fmt.Sprintf("/proc/self/fd/%d", nsExeFD), []string{nspawn.AppHelper, modeExecIn, name},
		&os.ProcAttr{Env: []string{}, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, cfgR, syncW, exe}})
	_ = cfgR.Close()
	_ = syncW.Close()
	if err != nil {
		return 0, fmt.Errorf("start the app's process: %w", err)
	}
	pid := p.Pid
	_ = p.Release()
	log.DebugContext(ctx, "app process started", "pid", pid)
	_, werr := cfgW.Write(b)
	_ = cfgW.Close()
	line, err := io.ReadAll(io.LimitReader(syncR, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("read exec sync: %w", err)
	}
	if len(line) > 0 {
		_, _ = reapUntil(pid)
		return 0, errors.New(strings.TrimSpace(string(line)))
	}
	if werr != nil {
		return 0, fmt.Errorf("send exec config: %w", werr)
	}
	return pid, nil
}

// reapUntil reaps every child of the init (the orphans of its namespace
// are its children) until pid ends, and returns how it ended.
func reapUntil(pid int) (exitInfo, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return exitInfo{}, &os.SyscallError{Syscall: "wait4", Err: err}
		}
		if got == pid {
			return waitExit(syscall.WaitStatus(ws)), nil
		}
	}
}

// execInRoot is the process that becomes the app (modeExecIn), in the
// app's root: it reads its execConfig and calls isolate.Exec. On failure
// it writes one line on the sync pipe for the init and returns it.
func execInRoot(_ context.Context) error {
	if err := unix.CloseRange(nsConfigFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	sync := os.NewFile(nsMsgFD, "exec sync pipe")
	err := func() error {
		cfgFile := os.NewFile(nsConfigFD, "exec config")
		var cfg execConfig
		err := json.NewDecoder(cfgFile).Decode(&cfg)
		_ = cfgFile.Close()
		if err != nil {
			return fmt.Errorf("read exec config: %w", err)
		}
		return isolate.Exec(cfg.Policy, cfg.Exec)
	}()
	_, _ = sync.WriteString(ErrorLine(err) + "\n")
	return err
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
