package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/proctree"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appentry"
	"github.com/nosecone/nscn/internal/stage1/podattach"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// The app entrypoints (app/add, app/start, app/stop, app/rm) change the
// apps of a running mutable pod (run --mutable, nscn app sandbox), as the
// nspawn flavor's do (its apps_linux.go has the design; the steps they
// share are package appentry's), with two differences: the guest sees the
// stage1 rootfs through virtio-fs from virtiofsd's private mount
// namespace, and the pod's systemd runs in the guest.
//
//   - app/add: stage0 has mounted the app's rootfs, in the host's mount
//     namespace, at stage1/rootfs/opt/stage2/NAME/rootfs. app/add computes
//     the app's layout (sdpod.NewLayout), attaches the rootfs and the
//     host paths of its mounts into virtiofsd's mount namespace
//     (podattach: open_tree(2) clones taken on the host, moved there with
//     move_mount(2)), where the guest finds them on its next lookup, has
//     the agent bind the app's host paths onto themselves in the guest
//     (guest.OpBindEntries, as the guest's /init does for run's), writes
//     the app's units with its output on a free output slot
//     (MutableSlots), adds the app to the helpers' pod config and has the
//     guest's systemd load the unit, through the agent on the control
//     port (guest.FrameControl).
//   - app/start and app/stop start and stop the app's service through the
//     agent; the service's reap step records the exit status, which
//     reaches the host through virtio-fs.
//   - app/rm stops the service, removes the units, unmounts the app's
//     mounts in the guest (guest.OpUnmount) and in virtiofsd's namespace,
//     frees the slot and removes the app's files from the stage1 rootfs;
//     stage0 then unmounts the rootfs on the host.

// saveMutable records, for a mutable pod, what app/add needs of run
// (appentry.Record).
func saveMutable(podDir string, lc sdpod.LayoutConfig) error {
	if !lc.Args.Mutable {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(podDir, SlotDir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", SlotDir, err)
	}
	return appentry.WriteRecord(podDir, MutableFile, appentry.NewRecord(lc))
}

// appCall is what every app entrypoint starts from.
type appCall struct {
	podDir string
	root   *podroot.Root
	args   abiargs.AppArgs
	log    *slog.Logger
}

// newAppCall checks the pod directory, the UUID and the pid stage0 passed
// (appentry.CheckCall): it must be the pod's live qemu.
func newAppCall(log *slog.Logger, args abiargs.AppArgs) (*appCall, error) {
	podDir, pid, err := appentry.CheckCall(args)
	if err != nil {
		return nil, err
	}
	if qemu, alive := livePID(podDir, QemuPIDFile, "qemu"); !alive || qemu != pid {
		return nil, errdefs.FailedPrecondition("pid %d is not the running qemu of pod %s", pid, args.UUID)
	}
	root, err := podroot.Open(podDir)
	if err != nil {
		return nil, err
	}
	return &appCall{podDir: podDir, root: root, args: args, log: log.With("pod", args.UUID, "app", args.App)}, nil
}

// mountNS is the mount namespace the guest's root is served from:
// virtiofsd's. The C virtiofsd of Debian's qemu serves from a child it
// forks into new namespaces (its sandbox), in which the stage1 rootfs is
// the root; a virtiofsd that does not fork serves from the process run
// started, whose root is the host's.
func (c *appCall) mountNS() (podattach.NS, error) {
	pid, alive := livePID(c.podDir, VirtiofsdPIDFile, "virtiofsd")
	if !alive {
		return podattach.NS{}, errdefs.FailedPrecondition("pod %s has no running virtiofsd", c.args.UUID)
	}
	root := filepath.Join(c.podDir, stage1abi.Stage1RootfsRel)
	kids, _ := proctree.Children(pid)
	for _, child := range kids {
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", child)); err == nil && strings.Contains(filepath.Base(exe), "virtiofsd") {
			return podattach.NS{PID: child, Root: root}, nil
		}
	}
	return podattach.NS{}, errdefs.FailedPrecondition("pod %s: virtiofsd %d serves from no sandbox child; stage1-kvm's app entrypoints need virtiofsd's namespace sandbox", c.args.UUID, pid)
}

// loadPodConfig reads the helpers' pod config. It lives in the pod's
// root, which the guest can write: only the apps' entries are kept from
// it, and the entry of the app at hand is always computed anew.
func (c *appCall) loadPodConfig() (*sdpod.Pod, error) { return c.root.LoadPod() }

// savePodConfig replaces the helpers' pod config atomically.
func (c *appCall) savePodConfig(p *sdpod.Pod) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pod config: %w", err)
	}
	return c.root.Replace(sdpod.PodConfigFile, data, 0o600)
}

// unitCall makes one request of the guest's systemd through the agent.
func (c *appCall) unitCall(ctx context.Context, op string) (string, error) {
	r, err := control(ctx, c.podDir, guest.ControlRequest{Op: op, Unit: units.ServiceName(c.args.App)})
	return r.State, err
}

// loadWait is how long app/add waits for the guest's systemd to find a
// new unit: the guest caches the unit directory's attributes for a
// second (virtiofsd's cache=auto), and systemd looks for a new unit file
// only once the directory changed.
const loadWait = 5 * time.Second

// AppAdd implements the app/add entrypoint.
func AppAdd(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) (err error) {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.root.Close() }()
	var rec appentry.Record
	if err := appentry.ReadRecord(c.podDir, MutableFile, &rec); err != nil {
		return err
	}
	added, err := appentry.LoadAdded(c.podDir, &rec, args)
	if err != nil {
		return err
	}
	if v, ok := added.App.Annotations.Get(stage1abi.AnnotationAppStdin); ok && v == "fifo" {
		return errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm gives an added app no standard input (annotation %s): a FIFO in the shared root does not join the host and the guest", stage1abi.AnnotationAppStdin)
	}
	if v, ok := added.App.Annotations.Get(stage1abi.AnnotationAppTTY); ok && v != "false" {
		return errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm gives an added app no terminal (annotation %s)", stage1abi.AnnotationAppTTY)
	}
	pc, err := c.loadPodConfig()
	if err != nil {
		return err
	}
	if _, err := pc.AppByName(args.App); err == nil {
		return errdefs.AlreadyExists("the pod already has an app %q", args.App)
	}
	ns, err := c.mountNS()
	if err != nil {
		return err
	}
	layout, err := added.Layout(ctx, c.log)
	if err != nil {
		return err
	}
	app := &layout.Pod.Apps[0]
	if err := podmount.MakeEmptyVolumes(layout.EmptyVolumes); err != nil {
		return err
	}
	binds, err := appentry.CheckBinds(ctx, c.log, layout.Binds)
	if err != nil {
		return err
	}
	// From here on, undo what was done if a later step fails: app/rm's
	// cleanup, which takes whatever is there.
	defer func() {
		if err != nil {
			if cerr := c.cleanup(context.WithoutCancel(ctx), false); cerr != nil {
				c.log.WarnContext(ctx, "undo app/add", "err", cerr)
			}
		}
	}()
	slot, err := c.takeSlot()
	if err != nil {
		return err
	}
	files, err := addedAppUnits(*app, slot)
	if err != nil {
		return err
	}
	if err := podattach.Attach(ctx, c.log, ns, appentry.Attachments(c.podDir, args.App, binds)); err != nil {
		return err
	}
	if len(binds) > 0 {
		if _, err := control(ctx, c.podDir, guest.ControlRequest{Op: guest.OpBindEntries, Dirs: []string{sdpod.AppBindDir(args.App)}}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := c.root.WriteNew(path.Join(sdpod.UnitDir, f.Name), []byte(f.Content), 0o644); err != nil {
			return fmt.Errorf("write unit: %w", err)
		}
	}
	// The app's output FIFOs (stage1abi.AppOutputFIFO), for the CRI's
	// log writer: run's slotWriter writes them on the host, the guest
	// never opens them.
	if err := c.root.Mkfifos(sdpod.AppStdoutFIFO(args.App), sdpod.AppStderrFIFO(args.App)); err != nil {
		return err
	}
	pc.Apps = append(pc.Apps, *app)
	if err := c.savePodConfig(pc); err != nil {
		return err
	}
	deadline := time.Now().Add(loadWait)
	for {
		state, err := c.unitCall(ctx, sdmanager.OpLoadState)
		if err != nil {
			return err
		}
		if state == "loaded" {
			return nil
		}
		if state != "not-found" || time.Now().After(deadline) {
			return errdefs.FailedPrecondition("the guest's systemd did not load the unit of app %s (%s)", args.App, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// takeSlot gives the app the first free output slot. stage0's apps lock
// serializes the app entrypoints.
func (c *appCall) takeSlot() (int, error) {
	dir := filepath.Join(c.podDir, SlotDir)
	for n := range MutableSlots {
		err := writeNewFile(filepath.Join(c.podDir, SlotFile(n)), []byte(c.args.App+"\n"), 0o600)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("take an output slot in %s: %w", dir, err)
		}
	}
	return 0, errdefs.FailedPrecondition("the pod has %d apps already, as many as stage1-kvm relays the output of: remove one first", MutableSlots)
}

// freeSlot frees the app's output slot, if it has one.
func (c *appCall) freeSlot() error {
	for n := range MutableSlots {
		if slotOwner(c.podDir, n) == c.args.App {
			if err := os.Remove(filepath.Join(c.podDir, SlotFile(n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// slotOwner is the app holding output slot n, "" for none.
func slotOwner(podDir string, n int) string {
	b, err := os.ReadFile(filepath.Join(podDir, SlotFile(n))) //nolint:gosec // G304: a file of the pod directory, out of the guest's reach
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// AppStart implements the app/start entrypoint: it starts the app's
// service and waits until the guest's systemd has started it, then
// records stage1abi.AppStartedFile (pid 0: the app's pid is the guest
// kernel's).
func AppStart(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.root.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	for _, p := range []string{stage1abi.AppStatusFile(args.App), stage1abi.AppStartedFile(args.App)} {
		if err := c.root.Remove(p); err != nil {
			return fmt.Errorf("clear the app's last run: %w", err)
		}
	}
	state, err := c.unitCall(ctx, sdmanager.OpStart)
	if err != nil {
		return err
	}
	if err := appentry.WaitStarted(ctx, appentry.Start{
		PodDir: c.podDir, App: args.App, State: state, Poll: 50 * time.Millisecond,
		ActiveState: func(ctx context.Context) (string, error) { return c.unitCall(ctx, sdmanager.OpActiveState) },
	}); err != nil {
		return err
	}
	if err := c.root.MkdirAll(filepath.Dir(stage1abi.AppStartedFile(args.App)), 0o755); err != nil {
		return fmt.Errorf("record the app's start: %w", err)
	}
	return c.root.Replace(stage1abi.AppStartedFile(args.App), []byte("0\n"), 0o644)
}

// AppStop implements the app/stop entrypoint: it stops the app's service
// (SIGTERM, then SIGKILL after the unit's TimeoutStopSec) and waits; the
// service's reap step records the app's status.
func AppStop(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.root.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	_, err = c.unitCall(ctx, sdmanager.OpStop)
	return err
}

// AppRm implements the app/rm entrypoint: it stops the app if it runs,
// removes its units (the guest's systemd drops a stopped unit), takes its
// mounts out of the guest and of virtiofsd's namespace, frees its output
// slot and removes its files from the stage1 rootfs.
func AppRm(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error {
	c, err := newAppCall(log, args)
	if err != nil {
		return err
	}
	defer func() { _ = c.root.Close() }()
	if err := c.known(); err != nil {
		return err
	}
	if _, err := c.unitCall(ctx, sdmanager.OpStop); err != nil {
		return err
	}
	return c.cleanup(ctx, true)
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
// there: units (and the failed state of the service, when resetFailed),
// the entry of the pod config, mounts in the guest and in virtiofsd's
// namespace, the output slot, credentials, status and start records, bind
// mount points.
func (c *appCall) cleanup(ctx context.Context, resetFailed bool) error {
	name := c.args.App
	var errs []error
	for _, u := range []string{units.ServiceName(name), units.SocketName(name)} {
		if err := c.root.Remove(path.Join(sdpod.UnitDir, u)); err != nil {
			errs = append(errs, err)
		}
	}
	if resetFailed {
		// Stopped and not failed, the unit has no reference left: the
		// guest's systemd drops it.
		_, _ = c.unitCall(ctx, sdmanager.OpResetFailed)
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
	dirs := []string{path.Join(sdpod.Stage2Dir, name), sdpod.AppBindDir(name)}
	if _, err := control(ctx, c.podDir, guest.ControlRequest{Op: guest.OpUnmount, Dirs: dirs}); err != nil {
		errs = append(errs, err)
	}
	if ns, err := c.mountNS(); err == nil {
		if err := podattach.Detach(ctx, c.log, ns.PID, dirs); err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, err)
	}
	if err := c.freeSlot(); err != nil {
		errs = append(errs, err)
	}
	// In the stage1 rootfs, which the guest can write: a symlink there
	// leads nowhere out of it (podroot).
	for _, p := range appentry.AppFiles(name) {
		if err := c.root.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AppMain is the whole of an app entrypoint's main (appentry.Main): op
// is AppAdd, AppStart, AppStop or AppRm.
func AppMain(op appentry.Op) int {
	return appentry.Main(context.Background(), Flavor, op)
}
