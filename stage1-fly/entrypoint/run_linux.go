package entrypoint

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1-fly/inroot"
	"github.com/nosecone/nscn/stage1-fly/podmount"
)

// RunConfig is the input of Run.
type RunConfig struct {
	Args fly.RunArgs
	Log  *slog.Logger
	// LockFD is the value of RKT_LOCK_FD.
	LockFD string
	// Term is run's TERM, handed to an interactive app.
	Term string
	// Stdin, Stdout and Stderr are run's; the app shares them.
	Stdin, Stdout, Stderr *os.File
}

// helperConfig is what run sends the pod process on fd 3.
type helperConfig struct {
	Debug bool        `json:"debug"`
	Pod   string      `json:"pod"`
	Plan  fly.Plan    `json:"plan"`
	App   fly.AppSpec `json:"app"`
}

// report is one line on the report pipe (fd 4).
type report struct {
	Event  string `json:"event"` // eventReady, eventStarted, eventExited or eventFailed
	PID    int    `json:"pid,omitempty"`
	Status int    `json:"status,omitempty"`
	AppRan bool   `json:"appRan,omitempty"`
	Error  string `json:"error,omitempty"`
	Class  string `json:"class,omitempty"`
}

const (
	eventReady   = "ready"   // chrooted with all mounts in place
	eventStarted = "started" // the app runs with pid PID
	eventExited  = "exited"  // done; Status is the app's, AppRan says if it ran
	eventFailed  = "failed"  // the pod process gives up with Error
)

// forwardedSignals are passed on from run to the pod process, and from
// there to the app.
var forwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP}

// Run implements the run entrypoint, from the pod directory (the working
// directory): it validates the pod, prepares empty volumes, starts the pod
// process and supervises it until the app is done. It returns the app's
// status, or an error for fly's own failures (exit ExitRuntime).
func Run(ctx context.Context, cfg RunConfig) (int, error) {
	log := cfg.Log.With("pod", cfg.Args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	lockFD, err := checkLockFD(cfg.LockFD, podDir)
	if err != nil {
		return 0, err
	}
	if err := cloexecInherited(); err != nil {
		return 0, err
	}
	for _, ignored := range []struct{ flag, value string }{
		{stage1abi.FlagHostname, cfg.Args.Hostname},
		{stage1abi.FlagMDSToken, redact(cfg.Args.MDSToken)},
	} {
		if ignored.value != "" {
			log.DebugContext(ctx, "flag ignored by fly", "flag", ignored.flag, "value", ignored.value)
		}
	}

	pm, err := fly.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return 0, err
	}
	// Fly has no network of its own to forward into: an app listens on
	// the host's ports directly.
	for _, p := range pm.Ports {
		log.WarnContext(ctx, "fly shares the host's network: the port is not forwarded, the app uses the host's ports directly", "port", p.Name.String(), "host_port", p.HostPort)
	}
	ra, err := fly.SingleApp(pm)
	if err != nil {
		return 0, err
	}
	log = log.With("app", ra.Name.String())
	// The appc spec requires the executor to say which isolators it did
	// not enforce; fly enforces none (Documentation/stage1-fly.md).
	if ra.App != nil {
		for _, iso := range ra.App.Isolators {
			log.WarnContext(ctx, "isolator not enforced by the fly flavor", "isolator", iso.Name.String())
		}
	}
	envOpts := fly.EnvOptions{}
	if cfg.Args.Interactive {
		envOpts.Term = cfg.Term
	}
	spec, err := fly.NewAppSpec(ra, envOpts)
	if err != nil {
		return 0, err
	}
	plan, err := fly.PlanMounts(fly.PlanConfig{PodDir: podDir, Pod: pm, App: ra, DNS: cfg.Args.DNS})
	if err != nil {
		return 0, err
	}
	for _, w := range plan.Warnings {
		log.WarnContext(ctx, w)
	}
	if err := checkPlan(plan); err != nil {
		return 0, err
	}
	if err := podmount.MakeEmptyVolumes(plan.EmptyVolumes); err != nil {
		return 0, err
	}

	hc := helperConfig{Debug: cfg.Args.Debug, Pod: cfg.Args.UUID, Plan: plan, App: spec}
	return superviseHelper(ctx, log, cfg, podDir, lockFD, hc)
}

// redact hides a secret in logs but says whether it was set.
func redact(s string) string {
	if s == "" {
		return ""
	}
	return "(set)"
}

// checkLockFD validates RKT_LOCK_FD: an open descriptor on the pod
// directory. run keeps it open, close-on-exec, until it exits; the pod
// process gets an explicit duplicate.
func checkLockFD(v, podDir string) (int, error) {
	if v == "" {
		return 0, errdefs.FailedPrecondition("%s is not set: stage0 must pass the pod lock", stage1abi.EnvLockFD)
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return 0, errdefs.InvalidArgument("%s=%q is not a descriptor number above 2", stage1abi.EnvLockFD, v)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		return 0, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("%s=%d: %w", stage1abi.EnvLockFD, fd, &os.SyscallError{Syscall: "fstat", Err: err}))
	}
	if err := unix.Stat(podDir, &want); err != nil {
		return 0, &os.PathError{Op: "stat", Path: podDir, Err: err}
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return 0, errdefs.InvalidArgument("%s=%d is not a descriptor on the pod directory", stage1abi.EnvLockFD, fd)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// checkPlan checks, before anything is mounted, what can be checked from
// the host: the rootfs is a real directory and bind sources exist, host
// volume sources without symlinks anywhere in their path. Empty volumes
// are created later, by podmount.MakeEmptyVolumes.
func checkPlan(p fly.Plan) error {
	st, err := os.Lstat(p.RootFS)
	if err != nil {
		return errdefs.With(errdefs.ErrNotFound, fmt.Errorf("app rootfs: %w", err))
	}
	if !st.IsDir() {
		return errdefs.FailedPrecondition("app rootfs %s is not a directory", p.RootFS)
	}
	ours := map[string]bool{}
	for _, v := range p.EmptyVolumes {
		ours[v.Path] = true
	}
	for _, m := range p.Mounts {
		if m.Kind != fly.KindBind || m.Fallback || ours[m.Source] {
			continue
		}
		var f *os.File
		if m.SourceNoSymlinks {
			f, err = inroot.OpenNoSymlinks(m.Source, unix.O_PATH)
		} else {
			f, err = os.OpenFile(m.Source, unix.O_PATH, 0)
		}
		if err != nil {
			return podmount.SourceError(m, err)
		}
		_ = f.Close()
	}
	return nil
}

// superviseHelper starts the pod process, feeds it its config, forwards
// signals and follows its reports until it exits.
func superviseHelper(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, lockFD int, hc helperConfig) (status int, err error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create config pipe: %w", err)
	}
	defer func() { _ = cfgW.Close() }()
	repR, repW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return 0, fmt.Errorf("create report pipe: %w", err)
	}
	defer func() { _ = repR.Close() }()
	lockDup, err := unix.FcntlInt(uintptr(lockFD), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		_ = cfgR.Close()
		_ = repW.Close()
		return 0, fmt.Errorf("duplicate pod lock: %w", &os.SyscallError{Syscall: "fcntl", Err: err})
	}
	lockFile := os.NewFile(uintptr(lockDup), "pod lock")

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{"stage1-fly-pod", HelperArg},
		Env:        []string{},
		Dir:        podDir,
		Stdout:     cfg.Stdout,
		Stderr:     cfg.Stderr,
		ExtraFiles: []*os.File{cfgR, repW, lockFile}, // fds 3, 4, 5
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS,
			Pdeathsig:  syscall.SIGKILL,
			// Without a terminal to share, keep the app out of the
			// terminal's process group: run forwards signals once.
			Setpgid: !cfg.Args.Interactive,
		},
	}
	if cfg.Args.Interactive {
		cmd.Stdin = cfg.Stdin
	}

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)

	log.DebugContext(ctx, "start pod process", "namespaces", "mnt", "interactive", cfg.Args.Interactive)
	err = cmd.Start()
	_ = cfgR.Close()
	_ = repW.Close()
	_ = lockFile.Close()
	if err != nil {
		return 0, fmt.Errorf("start pod process: %w", err)
	}
	defer func() {
		if err != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	if err := json.NewEncoder(cfgW).Encode(hc); err != nil {
		return 0, fmt.Errorf("send config to pod process: %w", err)
	}
	_ = cfgW.Close()

	reports := make(chan report)
	go func() {
		defer close(reports)
		sc := bufio.NewScanner(repR)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			var r report
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				reports <- r
			}
		}
	}()

	var final *report
	appStarted := false
	for reports != nil {
		select {
		case sig := <-sigc:
			log.DebugContext(ctx, "forward signal to pod process", "signal", sig.String())
			if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.WarnContext(ctx, "forward signal to pod process", "signal", sig.String(), "err", err)
			}
		case r, ok := <-reports:
			if !ok {
				reports = nil
				break
			}
			log.DebugContext(ctx, "pod process report", "event", r.Event, "pid", r.PID, "status", r.Status)
			switch r.Event {
			case eventReady:
				pid := strconv.Itoa(cmd.Process.Pid) + "\n"
				if err := atomicfile.Write(podDir, stage1abi.PIDFile, []byte(pid)); err != nil {
					return 0, err
				}
			case eventStarted:
				appStarted = true
			case eventExited, eventFailed:
				final = &r
			}
		}
	}
	waitErr := cmd.Wait()

	switch {
	case final != nil && final.Event == eventFailed:
		return 0, withClass(final.Error, final.Class)
	case final != nil:
		status = final.Status
		appStarted = final.AppRan
	case appStarted && cmd.ProcessState != nil && !cmd.ProcessState.Exited():
		// Killed (stop --force): the app died with it (Pdeathsig).
		status = exitStatus(cmd.ProcessState)
		log.DebugContext(ctx, "pod process killed", "status", status)
	default:
		return 0, fmt.Errorf("pod process ended without reporting the app's status: %w", waitErr)
	}
	if appStarted {
		if err := writeStatus(podDir, hc.App.Name, status); err != nil {
			return 0, err
		}
	}
	return status, nil
}

// writeStatus records the app's exit status in the pod directory.
func writeStatus(podDir, app string, status int) error {
	p := filepath.Join(podDir, stage1abi.AppStatusFile(app))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("record app status: %w", err)
	}
	return atomicfile.Write(filepath.Dir(p), filepath.Base(p), []byte(strconv.Itoa(status)+"\n"))
}
