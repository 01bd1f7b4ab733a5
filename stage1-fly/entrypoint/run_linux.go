package entrypoint

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
)

// RunConfig is the input of Run.
type RunConfig struct {
	Args abiargs.RunArgs
	Log  *slog.Logger
	// LockFD is the value of RKT_LOCK_FD.
	LockFD string
	// Term is run's TERM, handed to an interactive app.
	Term string
	// Stdin, Stdout and Stderr are run's; the app shares them.
	Stdin, Stdout, Stderr *os.File
}

// forwardedSignals are passed on to the pre-start handler or the app.
var forwardedSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP}

// Run implements the run entrypoint, from the pod directory (the working
// directory): it validates the pod, prepares empty volumes, starts the pod
// process and supervises it until the app is done. It returns the app's
// status, or an error for fly's own failures (exit ExitRuntime).
func Run(ctx context.Context, cfg RunConfig) (int, error) {
	tl := timeline.FromEnv("stage1-fly")
	tl.MarkProcessStart()
	tl.Mark("start")
	log := cfg.Log.With("pod", cfg.Args.UUID)
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	// The lock stays open, close-on-exec, until run exits.
	if err := entry.CheckLockFD(cfg.LockFD, podDir); err != nil {
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

	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
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
	envOpts := appspec.EnvOptions{}
	if cfg.Args.Interactive {
		envOpts.Term = cfg.Term
	}
	spec, err := appspec.NewAppSpec(ra, envOpts)
	if err != nil {
		return 0, err
	}
	plan, err := appmount.PlanMounts(appmount.PlanConfig{PodDir: podDir, Pod: pm, App: ra, DNS: cfg.Args.DNS})
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

	tl.Mark("pod-planned")
	p := &pod{
		log: log, tl: tl, plan: plan, app: spec, interactive: cfg.Args.Interactive,
		stdout: cfg.Stdout, stderr: cfg.Stderr, appStarted: make(chan struct{}),
	}
	if cfg.Args.Interactive {
		p.stdin = cfg.Stdin
	}
	return supervise(ctx, log, podDir, p)
}

// redact hides a secret in logs but says whether it was set.
func redact(s string) string {
	if s == "" {
		return ""
	}
	return "(set)"
}

// checkPlan checks, before anything is mounted, what can be checked from
// the host: the rootfs is a real directory and bind sources exist, host
// volume sources without symlinks anywhere in their path. Empty volumes
// are created later, by podmount.MakeEmptyVolumes.
func checkPlan(p appmount.Plan) error {
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
		if m.Kind != appmount.KindBind || m.Fallback || ours[m.Source] {
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

// supervise runs the pod thread, forwards signals, writes the pid file
// once the pod can be entered and the app's status file once it has
// exited, and returns that status.
func supervise(ctx context.Context, log *slog.Logger, podDir string, p *pod) (int, error) {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)
	go p.forward(ctx, sigc)

	log.DebugContext(ctx, "start pod thread", "namespaces", "mnt", "interactive", p.interactive)
	ready := make(chan int, 1)
	done := make(chan result, 1)
	p.start(ctx, ready, done)
	// The pid file is written once the pod thread is ready, and always
	// before the status file, however fast the app: a pod that ran has a
	// pid file. The pod thread sends its id on ready or closes it, then
	// sends its result on done.
	var (
		status *atomicfile.Pending
		res    result
		got    bool // res came before the app started
	)
	if tid, ok := <-ready; ok {
		// The pid file names the pod thread: /proc/<tid>/root and
		// /proc/<tid>/ns/mnt are the pod's, and a signal sent to it
		// reaches run, which forwards it.
		if err := atomicfile.Write(podDir, stage1abi.PIDFile, []byte(strconv.Itoa(tid)+"\n")); err != nil {
			p.kill()
			<-done
			return 0, err
		}
		// While the app runs: the status file's directory and
		// temporary file, whose creation in the stage1 rootfs (two
		// directories and an inode, in an overlayfs) would otherwise
		// stand between the app's exit and run's. Not
		// before the app has started: run has one P, which the pod
		// thread needs until then. Should it fail, writeStatus tries
		// again, and reports it, once the app is done.
		select {
		case <-p.appStarted:
			status, _ = prepareStatus(podDir, p.app.Name)
		case res = <-done:
			got = true
		}
	}
	if !got {
		res = <-done
	}
	if res.err != nil || !res.appRan {
		if status != nil {
			status.Discard()
		}
		if res.err != nil {
			return 0, res.err
		}
		return res.status, nil
	}
	if err := writeStatus(podDir, p.app.Name, status, res.status); err != nil {
		return 0, err
	}
	p.tl.Mark("status-written")
	return res.status, nil
}

// prepareStatus creates the directory of an app's status file and the
// temporary file writeStatus commits.
func prepareStatus(podDir, app string) (*atomicfile.Pending, error) {
	p := filepath.Join(podDir, stage1abi.AppStatusFile(app))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("record app status: %w", err)
	}
	return atomicfile.Prepare(filepath.Dir(p), filepath.Base(p))
}

// writeStatus records the app's exit status in the pod directory, through
// pending if prepareStatus made it, else from the start.
func writeStatus(podDir, app string, pending *atomicfile.Pending, status int) error {
	if pending == nil {
		var err error
		if pending, err = prepareStatus(podDir, app); err != nil {
			return err
		}
	}
	return pending.Commit([]byte(strconv.Itoa(status) + "\n"))
}
