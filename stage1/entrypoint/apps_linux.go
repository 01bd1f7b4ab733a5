package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appentry"
	"github.com/nosecone/nscn/internal/stage1/podattach"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// The app entrypoints (app/add, app/start, app/stop, app/rm) change the
// apps of a running mutable pod (run --mutable, nscn app sandbox). They
// run on the host, in the pod directory, while run holds the pod's lock;
// stage0 serializes them with stage1abi.AppsLockFile.
//
//   - app/add: stage0 has added the app to the pod manifest and mounted
//     its rootfs, in the host's mount namespace, at
//     stage1/rootfs/opt/stage2/NAME/rootfs. app/add computes the app's
//     layout as run does for a run-time app (sdpod.NewLayout: the same
//     process spec, mount plan and isolation policy), attaches the
//     rootfs and the host paths of its mounts into the pod's mount
//     namespace (open_tree(2) clones taken on the host, moved into the
//     pod with move_mount(2): nothing the pod controls is resolved on
//     the host), writes the app's units (units.AppUnits), adds the app
//     to the helpers' pod config (sdpod.PodConfigFile) and has the pod's
//     systemd load the app's unit (no daemon-reload: systemd loads a new
//     unit file on demand). The app helper then confines the app exactly as a
//     run-time app.
//   - app/start and app/stop start and stop the app's service through
//     the pod's systemd (its private bus socket, podSystemd); the
//     service's reap step records the exit status as for any app.
//   - app/rm stops the service, removes the units, detaches the app's
//     mounts in the pod and removes its files from the stage1 rootfs;
//     stage0 then unmounts the rootfs on the host and drops the app from
//     the manifest.

// mutableFile is where run leaves the pod's mutableRecord for the app
// entrypoints of a mutable pod (appentry.Record).
const mutableFile = "nspawn-mutable.json"

// mutableRecord is the content of mutableFile: appentry.Record, and
// whether the pod's cgroups are the unified hierarchy's.
type mutableRecord struct {
	appentry.Record
	CgroupUnified bool `json:"cgroupUnified,omitempty"`
}

// saveMutable records, for a mutable pod, what app/add needs of run.
func saveMutable(podDir string, lc sdpod.LayoutConfig, unified bool) error {
	if !lc.Args.Mutable {
		return nil
	}
	return appentry.WriteRecord(podDir, mutableFile, mutableRecord{Record: appentry.NewRecord(lc), CgroupUnified: unified})
}

// podStatusApps are the apps whose statuses make run's exit status: none
// for a mutable pod, which ends when it is stopped, whatever its apps did.
func podStatusApps(pod sdpod.Pod) []string {
	if pod.Mutable {
		return nil
	}
	return pod.Names()
}

// startedMutableApps are the apps of a mutable pod that app/start
// started and that have no status yet (podroot.Root.StartedApps): when stop
// --force kills the pod, run records the kill as their status, as it
// does for a run-time app.
func startedMutableApps(root *podroot.Root, pod sdpod.Pod) []string {
	if !pod.Mutable {
		return nil
	}
	return root.StartedApps()
}

// appCall is what every app entrypoint starts from.
type appCall struct {
	podDir string
	pid    int // the pod's pid 1 (the pod's systemd), checked
	// root is the stage1 rootfs, the pod's root: every path the
	// entrypoint writes, reads or removes there is resolved in it
	// (package podroot), since the pod's own processes can write it.
	root *podroot.Root
	args abiargs.AppArgs
	log  *slog.Logger
}

// newAppCall checks the pod directory, the UUID and the pid stage0 passed
// (appentry.CheckCall): it must be the pod's, whose root is the stage1
// rootfs.
func newAppCall(log *slog.Logger, args abiargs.AppArgs) (*appCall, error) {
	podDir, pid, err := appentry.CheckCall(args)
	if err != nil {
		return nil, err
	}
	if err := checkPodRoot(pid, filepath.Join(podDir, stage1abi.Stage1RootfsRel)); err != nil {
		return nil, err
	}
	root, err := podroot.Open(podDir)
	if err != nil {
		return nil, err
	}
	return &appCall{podDir: podDir, pid: pid, root: root, args: args, log: log.With("pod", args.UUID, "app", args.App)}, nil
}

// Close closes the pod's root.
func (c *appCall) Close() error { return c.root.Close() }

// loadPodConfig reads the helpers' pod config. It lives in the pod's
// root, which the pod can write: only the apps' entries are kept from it,
// and the entry of the app at hand is always computed anew.
func (c *appCall) loadPodConfig() (*sdpod.Pod, error) {
	return c.root.LoadPod()
}

// savePodConfig replaces the helpers' pod config atomically.
func (c *appCall) savePodConfig(p *sdpod.Pod) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pod config: %w", err)
	}
	return c.root.Replace(sdpod.PodConfigFile, data, 0o600)
}

// AppAdd implements the app/add entrypoint.
func AppAdd(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) (err error) {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	var rec mutableRecord
	if err := appentry.ReadRecord(c.podDir, mutableFile, &rec); err != nil {
		return err
	}
	added, err := appentry.LoadAdded(c.podDir, &rec.Record, args)
	if err != nil {
		return err
	}
	pc, err := c.loadPodConfig()
	if err != nil {
		return err
	}
	if _, err := pc.AppByName(args.App); err == nil {
		return errdefs.AlreadyExists("the pod already has an app %q", args.App)
	}
	layout, err := added.Layout(ctx, c.log)
	if err != nil {
		return err
	}
	app := &layout.Pod.Apps[0]
	if v, ok := added.App.Annotations.Get(stage1abi.AnnotationAppStdin); ok && v == "fifo" {
		// The helper opens the FIFO as the app's stdin; makeAppFIFOs
		// makes it.
		app.Stdin = sdpod.AppStdinFIFO(args.App)
	}
	if v, ok := added.App.Annotations.Get(stage1abi.AnnotationAppTTY); ok {
		// The helper makes the terminal (apphelper's tty_linux.go);
		// makeAppFIFOs makes its resize FIFO.
		if app.TTY, err = stage1abi.ParseAppTTY(v); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
	}
	if err := journalApps(c.podDir, &layout.Pod, false); err != nil {
		return err
	}
	if err := podmount.MakeEmptyVolumes(layout.EmptyVolumes); err != nil {
		return err
	}
	binds, err := appentry.CheckBinds(ctx, c.log, layout.Binds)
	if err != nil {
		return err
	}
	ua := units.App{
		Name: args.App, PreStart: len(app.Spec.PreStart) > 0, PostStop: len(app.Spec.PostStop) > 0,
		Stdout: sdpod.AppStdoutFIFO(args.App), Stderr: sdpod.AppStderrFIFO(args.App),
		Notify: app.Notify, Sockets: app.Sockets,
	}
	if rec.CgroupUnified && app.Policy != nil {
		ua.Limits = app.Policy.Cgroup
	}
	files, err := units.AppUnits(nspawn.UnitConfig(), ua)
	if err != nil {
		return err
	}
	// From here on, undo what was done if a later step fails: app/rm's
	// cleanup, which takes whatever is there.
	defer func() {
		if err != nil {
			if cerr := c.cleanup(context.WithoutCancel(ctx), nil); cerr != nil {
				c.log.WarnContext(ctx, "undo app/add", "err", cerr)
			}
		}
	}()
	attach := appentry.Attachments(c.podDir, args.App, binds)
	if !rec.CgroupUnified && app.Policy != nil && !app.Policy.Cgroup.IsZero() {
		// v1: the app's cgroups, made host-side (appcgroup_linux.go).
		cg, err := c.addAppCgroup(ctx, &layout.Pod, app.Policy.Cgroup)
		if err != nil {
			return err
		}
		for _, b := range cg {
			attach = append(attach, podattach.Attachment{Source: b.Source, Target: b.Target})
		}
	}
	if err := podattach.Attach(ctx, c.log, c.mountNS(), attach); err != nil {
		return err
	}
	for _, f := range files {
		if err := c.root.WriteNew(path.Join(sdpod.UnitDir, f.Name), []byte(f.Content), 0o644); err != nil {
			return fmt.Errorf("write unit %s: %w", f.Name, err)
		}
	}
	if err := makeAppFIFOs(c.podDir, *app); err != nil {
		return err
	}
	pc.Apps = append(pc.Apps, *app)
	if err := c.savePodConfig(pc); err != nil {
		return err
	}
	sd := dialPodSystemd(c.pid)
	state, err := sd.loadState(ctx, units.ServiceName(args.App))
	if err != nil {
		return err
	}
	if state != "loaded" {
		return errdefs.FailedPrecondition("the pod's systemd did not load the unit of app %s (%s)", args.App, state)
	}
	return nil
}

// mountNS is the pod's mount namespace: its pid 1's, whose root is the
// stage1 rootfs.
func (c *appCall) mountNS() podattach.NS {
	return podattach.NS{PID: c.pid, Root: filepath.Join(c.podDir, stage1abi.Stage1RootfsRel)}
}

// detach unmounts, in the pod's mount namespace, everything at and below
// the app's rootfs and its bind directory, lazily: what app/add attached
// and what the app helper mounted there.
func (c *appCall) detach(ctx context.Context) error {
	return podattach.Detach(ctx, c.log, c.pid, []string{
		path.Join(sdpod.Stage2Dir, c.args.App, "rootfs"), sdpod.AppBindDir(c.args.App), appCgroupBindDir(c.args.App),
	})
}

// AppStart implements the app/start entrypoint: it starts the app's
// service and waits until the pod's systemd has started it (the helper
// has made the app's mounts and is about to exec it, or the app said
// READY=1), then records stage1abi.AppStartedFile.
func AppStart(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	for _, p := range []string{stage1abi.AppStatusFile(args.App), stage1abi.AppStartedFile(args.App)} {
		if err := c.root.Remove(p); err != nil {
			return fmt.Errorf("clear the app's last run: %w", err)
		}
	}
	sd := dialPodSystemd(c.pid)
	state, err := sd.run(ctx, sdmanager.OpStart, units.ServiceName(args.App))
	if err != nil {
		return err
	}
	if err := appentry.WaitStarted(ctx, appentry.Start{
		PodDir: c.podDir, App: args.App, State: state, Poll: 20 * time.Millisecond,
		ActiveState: func(ctx context.Context) (string, error) { return sd.activeState(ctx, units.ServiceName(args.App)) },
	}); err != nil {
		return err
	}
	pid := appHelperPID(c.pid, args.App)
	if err := c.root.MkdirAll(path.Dir(stage1abi.AppStartedFile(args.App)), 0o755); err != nil {
		return fmt.Errorf("record the app's start: %w", err)
	}
	return c.root.Replace(stage1abi.AppStartedFile(args.App), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// AppStop implements the app/stop entrypoint: it stops the app's service
// (SIGTERM, then SIGKILL after the unit's TimeoutStopSec) and waits; the
// service's reap step records the app's status.
func AppStop(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	sd := dialPodSystemd(c.pid)
	_, err = sd.run(ctx, sdmanager.OpStop, units.ServiceName(args.App))
	return err
}

// AppRm implements the app/rm entrypoint: it stops the app if it runs,
// removes its units (the pod's systemd drops a stopped unit), detaches its mounts in
// the pod and removes its files from the stage1 rootfs.
func AppRm(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	sd := dialPodSystemd(c.pid)
	if _, err := sd.run(ctx, sdmanager.OpStop, units.ServiceName(args.App)); err != nil {
		return err
	}
	return c.cleanup(ctx, sd)
}

// known refuses an app the helpers' pod config does not list.
func (c *appCall) known() error {
	pc, err := c.loadPodConfig()
	if err != nil {
		return err
	}
	_, err = pc.AppByName(c.args.App)
	return err
}

// cleanup removes what app/add made for the app, whatever of it is
// there: units (and the failed state of the service, when sd is given),
// the entry of the pod config, mounts in the pod, FIFOs, credentials,
// status and start records, bind mount points.
func (c *appCall) cleanup(ctx context.Context, sd *podSystemd) error {
	name := c.args.App
	var errs []error
	for _, u := range []string{units.ServiceName(name), units.SocketName(name)} {
		if err := c.root.Remove(path.Join(sdpod.UnitDir, u)); err != nil {
			errs = append(errs, err)
		}
	}
	if sd != nil {
		// Stopped and not failed, the unit has no reference left: the
		// pod's systemd drops it.
		sd.resetFailed(ctx, units.ServiceName(name))
	}
	if pc, err := c.loadPodConfig(); err == nil {
		if pc.RemoveApp(name) {
			if err := c.savePodConfig(pc); err != nil {
				errs = append(errs, err)
			}
		}
	} else {
		errs = append(errs, err)
	}
	if err := c.detach(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := c.removeAppCgroup(); err != nil {
		errs = append(errs, err)
	}
	// In the pod's root: a symlink the pod planted leads nowhere out
	// of it (package podroot).
	for _, p := range appentry.AppFiles(name) {
		if err := c.root.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// appHelperPID returns the host pid of the app's main process: the app
// helper its unit runs ("/nscn/app run NAME" or "/nscn/app exec NAME"),
// which supervises the app in the app's own PID namespace and mirrors its
// exit. It is looked for among the processes of the pod's PID namespace
// (that of podPID); 0 when none matches (the app has exited already).
func appHelperPID(podPID int, app string) int {
	var podNS unix.Stat_t
	if err := unix.Stat(filepath.Join("/proc", strconv.Itoa(podPID), "ns", "pid"), &podNS); err != nil {
		return 0
	}
	want := []string{
		sdpod.AppHelper + "\x00run\x00" + app + "\x00",
		sdpod.AppHelper + "\x00exec\x00" + app + "\x00",
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		var ns unix.Stat_t
		if unix.Stat(filepath.Join(p, "ns", "pid"), &ns) != nil || ns.Ino != podNS.Ino || ns.Dev != podNS.Dev {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p, "cmdline")) //nolint:gosec // G304: a /proc path
		if err != nil {
			continue
		}
		if slices.Contains(want, string(b)) {
			n, _ := strconv.Atoi(filepath.Base(p))
			return n
		}
	}
	return 0
}

// AppMain is the whole of an app entrypoint's main (appentry.Main): op
// is AppAdd, AppStart, AppStop or AppRm. Its argv may also be
// SystemdCallArg alone, for the child that speaks to the pod's systemd
// from inside its PID namespace.
func AppMain(op appentry.Op) int {
	ctx := context.Background()
	if len(os.Args) == 2 && os.Args[1] == SystemdCallArg {
		return PodSystemdCall(ctx)
	}
	return appentry.Main(ctx, Flavor, op)
}
