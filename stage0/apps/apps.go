// Package apps changes the apps of a running mutable pod (one started by
// nscn app sandbox, the stage1's run with --mutable): it adds an app
// (fetching and rendering its image as run does), starts, stops and
// removes one, and reports the apps' states. It is the library behind the
// "nscn app" commands and what a CRI server calls.
//
// Each change holds the pod's apps lock (stage1abi.AppsLockFile in the
// pod directory; the pod's own lock belongs to the running stage1),
// replaces the pod manifest crash-safely (a new file, synced, renamed
// over the old one, the directory synced: a crash leaves the old manifest
// or the new one), and calls the stage1's app entrypoint
// (coreos.com/rkt/stage1/app/add, …) in the pod directory. A stage1 that
// lacks them, or declares an interface version older than
// stage1abi.InterfaceVersionApps, is refused before anything changes.
//
// It runs in stage0, as root. It never enters the pod's namespaces: the
// stage1's entrypoints do.
package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
	"github.com/nosecone/nscn/stage0/stage1"
	"github.com/nosecone/nscn/store"
)

// Config is what every operation needs.
type Config struct {
	DataDir string
	Store   *store.Store
	Log     *slog.Logger
	// Debug passes --debug to the entrypoints.
	Debug bool
	// Env is the entrypoints' environment (stage0's, with the debug
	// switch); the pod's pid is added.
	Env []string
	// Stdout and Stderr receive the entrypoints' output.
	Stdout, Stderr io.Writer
}

// pidWait bounds the wait for a just-started pod to record its pid.
const pidWait = 30 * time.Second

// session is one locked operation on a running mutable pod.
type session struct {
	cfg  Config
	pod  *pod.Pod
	s1   *stage1.Pod
	pid  int
	lock *lock.File
}

// open finds the running pod uuid (or unambiguous prefix), checks its
// stage1 can change apps and takes the apps lock.
func open(ctx context.Context, cfg Config, uuid string) (_ *session, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p, err := pod.Get(ctx, cfg.DataDir, uuid)
	if err != nil {
		return nil, err
	}
	if p.State != pod.Running {
		return nil, errdefs.FailedPrecondition("pod %s is %s, not running: the apps of a pod change only while it runs", p.UUID, p.State)
	}
	s1, err := stage1.OpenPod(ctx, cfg.Store, p.Path)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if err := s1.CheckApps(); err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	lk, err := lock.ExclusiveLock(ctx, filepath.Join(p.Path, stage1abi.AppsLockFile), lock.RegularFile)
	if err != nil {
		return nil, fmt.Errorf("pod %s: lock its apps: %w", p.UUID, err)
	}
	defer func() {
		if err != nil {
			_ = lk.Close()
		}
	}()
	waitCtx, cancel := context.WithTimeout(ctx, pidWait)
	defer cancel()
	// A stage1 of InterfaceVersionApps writes the ready file (version 8)
	// once the pod's init has started: before it, the pod cannot take
	// an app (a sandbox just started).
	if err := waitReady(waitCtx, p); err != nil {
		return nil, err
	}
	pid, err := p.WaitPID(waitCtx)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return &session{cfg: cfg, pod: p, s1: s1, pid: pid, lock: lk}, nil
}

// readyPoll is how often waitReady looks for the ready file.
const readyPoll = 20 * time.Millisecond

// waitReady waits until the running pod p is ready (stage1abi.ReadyFile).
func waitReady(ctx context.Context, p *pod.Pod) error {
	for {
		_, err := p.Ready(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if err := p.Refresh(ctx); err != nil {
			return err
		}
		if p.State != pod.Running {
			return errdefs.FailedPrecondition("pod %s is %s, not running", p.UUID, p.State)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s: wait until it is ready: %w", p.UUID, ctx.Err())
		case <-time.After(readyPoll):
		}
	}
}

func (s *session) close() { _ = s.lock.Close() }

// invoke runs an app entrypoint for app; a non-zero status is an error
// (the entrypoint said why on stderr).
func (s *session) invoke(ctx context.Context, entrypoint, what, app string, f stage1.AppFlags) error {
	f.Debug, f.UUID, f.App = s.cfg.Debug, s.pod.UUID, app
	args, err := stage1.AppArgs(f)
	if err != nil {
		return err
	}
	env := append(slices.Clone(s.cfg.Env), stage1abi.EnvEnterPID+"="+strconv.Itoa(s.pid))
	s.cfg.Log.Debug("app entrypoint", "pod", s.pod.UUID, "app", app, "entrypoint", entrypoint, "args", args)
	status, err := s.s1.Invoke(context.WithoutCancel(ctx), entrypoint, args, stage1.Stdio{Out: s.cfg.Stdout, Err: s.cfg.Stderr}, env)
	if err != nil {
		return fmt.Errorf("%s app %s in pod %s: %w", what, app, s.pod.UUID, err)
	}
	if status != 0 {
		return errdefs.FailedPrecondition("%s app %s in pod %s: the stage1's app/%s entrypoint failed (status %d)", what, app, s.pod.UUID, what, status)
	}
	return nil
}

// manifest reads the pod manifest.
func (s *session) manifest(ctx context.Context) (*schema.PodManifest, error) {
	return s.pod.Manifest(ctx)
}

// hasApp refuses an app the manifest does not list, naming those it does.
func hasApp(pm *schema.PodManifest, uuid, app string) error {
	names := appNames(pm)
	if slices.Contains(names, app) {
		return nil
	}
	if len(names) == 0 {
		return errdefs.NotFound("pod %s has no app %q (it has no apps)", uuid, app)
	}
	return errdefs.NotFound("pod %s has no app %q (its apps: %s)", uuid, app, strings.Join(names, ", "))
}

func appNames(pm *schema.PodManifest) []string {
	out := make([]string, len(pm.Apps))
	for i, a := range pm.Apps {
		out[i] = a.Name.String()
	}
	return out
}

// AddOptions are Add's: how to fetch and check the image (Prepare's
// Options: Store, Fetcher, AllCapabilities, InheritEnv, HostEnv, Mounter)
// and the app itself, as run takes it on its command line.
type AddOptions struct {
	Prepare prepare.Options
	App     prepare.App
	// The run-time relaxations of --insecure-options, passed to app/add.
	DisableCapabilities, DisablePaths, DisableSeccomp bool
}

// refuseTTY refuses an app that asks for a terminal
// (stage1abi.AnnotationAppTTY) of a stage1 that speaks the interface
// version given, older than InterfaceVersionAppTTY: it would start the
// app without one.
func refuseTTY(app prepare.App, version int) error {
	if v, ok := app.Annotations.Get(stage1abi.AnnotationAppTTY); ok && v != "false" && version < stage1abi.InterfaceVersionAppTTY {
		return errdefs.FailedPrecondition("app %s: the stage1 speaks interface version %d and cannot give the app a terminal (%s needs %d)", app.Name, version, stage1abi.AnnotationAppTTY, stage1abi.InterfaceVersionAppTTY)
	}
	return nil
}

// Add adds an app to the running mutable pod uuid and returns its name.
// The app is created, not started (Start). On failure the pod is as it
// was.
func Add(ctx context.Context, cfg Config, uuid string, o AddOptions) (_ string, err error) {
	s, err := open(ctx, cfg, uuid)
	if err != nil {
		return "", err
	}
	defer s.close()
	pm, err := s.manifest(ctx)
	if err != nil {
		return "", err
	}
	if _, ok := o.App.Annotations.Get(stage1abi.AnnotationAppPaths); ok && s.s1.Version < stage1abi.InterfaceVersionAppPaths {
		return "", errdefs.FailedPrecondition("pod %s: the stage1 speaks interface version %d and would ignore the app's restricted paths (%s needs %d)",
			s.pod.UUID, s.s1.Version, stage1abi.AnnotationAppPaths, stage1abi.InterfaceVersionAppPaths)
	}
	if _, ok := o.App.Annotations.Get(stage1abi.AnnotationMountOptions); ok && s.s1.Version < stage1abi.InterfaceVersionMountOptions {
		return "", errdefs.FailedPrecondition("app %s: the stage1 speaks interface version %d and cannot set a mount's propagation or keep it read-only to its top (needs %d)", o.App.Name, s.s1.Version, stage1abi.InterfaceVersionMountOptions)
	}
	if v, ok := o.App.Annotations.Get(stage1abi.AnnotationAppPID1); ok && v != "false" && s.s1.Version < stage1abi.InterfaceVersionAppPID1 {
		return "", errdefs.FailedPrecondition("app %s: the stage1 speaks interface version %d and cannot make the app pid 1 of its PID namespace (%s needs %d)", o.App.Name, s.s1.Version, stage1abi.AnnotationAppPID1, stage1abi.InterfaceVersionAppPID1)
	}
	if err := refuseTTY(o.App, s.s1.Version); err != nil {
		return "", err
	}
	po := o.Prepare
	po.Store, po.Log = cfg.Store, cfg.Log
	added, err := prepare.AddApp(ctx, po, s.pod.Path, pm, o.App)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			undo := context.WithoutCancel(ctx)
			if werr := WriteManifest(s.pod.Path, pm); werr != nil {
				cfg.Log.Warn("restore the pod manifest", "pod", s.pod.UUID, "error", werr)
			}
			if rerr := prepare.RemoveApp(undo, s.pod.Path, added.Name, po.Mounter); rerr != nil {
				cfg.Log.Warn("undo the app's layout", "pod", s.pod.UUID, "app", added.Name, "error", rerr)
			}
		}
	}()
	if err := WriteManifest(s.pod.Path, added.Manifest); err != nil {
		return "", err
	}
	if err := s.invoke(ctx, s.s1.AppAdd, "add", added.Name, stage1.AppFlags{
		DisableCapabilities: o.DisableCapabilities, DisablePaths: o.DisablePaths, DisableSeccomp: o.DisableSeccomp,
	}); err != nil {
		return "", err
	}
	return added.Name, nil
}

// Start starts app in the running mutable pod uuid.
func Start(ctx context.Context, cfg Config, uuid, app string) error {
	return simple(ctx, cfg, uuid, app, "start", func(s *session) string { return s.s1.AppStart })
}

// Stop stops app in the running mutable pod uuid; its exit status is
// recorded as for any app. Stopping an app that is not running does
// nothing.
func Stop(ctx context.Context, cfg Config, uuid, app string) error {
	return simple(ctx, cfg, uuid, app, "stop", func(s *session) string { return s.s1.AppStop })
}

func simple(ctx context.Context, cfg Config, uuid, app, what string, ep func(*session) string) error {
	s, err := open(ctx, cfg, uuid)
	if err != nil {
		return err
	}
	defer s.close()
	pm, err := s.manifest(ctx)
	if err != nil {
		return err
	}
	if err := hasApp(pm, s.pod.UUID, app); err != nil {
		return err
	}
	return s.invoke(ctx, ep(s), what, app, stage1.AppFlags{})
}

// Rm removes app from the running mutable pod uuid, stopping it first:
// the stage1 removes its units and mounts in the pod, then Rm drops it
// from the pod manifest and removes its rootfs (unmounted), overlay
// directories and appsinfo/NAME.
func Rm(ctx context.Context, cfg Config, uuid, app string) error {
	s, err := open(ctx, cfg, uuid)
	if err != nil {
		return err
	}
	defer s.close()
	pm, err := s.manifest(ctx)
	if err != nil {
		return err
	}
	if err := hasApp(pm, s.pod.UUID, app); err != nil {
		return err
	}
	if err := s.invoke(ctx, s.s1.AppRm, "rm", app, stage1.AppFlags{}); err != nil {
		return err
	}
	if err := WriteManifest(s.pod.Path, WithoutApp(pm, app)); err != nil {
		return err
	}
	return prepare.RemoveApp(ctx, s.pod.Path, app, nil)
}

// WithoutApp returns a copy of pm without app.
func WithoutApp(pm *schema.PodManifest, app string) *schema.PodManifest {
	out := *pm
	out.Apps = slices.DeleteFunc(slices.Clone(pm.Apps), func(a schema.RuntimeApp) bool { return a.Name.String() == app })
	return &out
}

// WriteManifest replaces the pod manifest of podDir crash-safely: the new
// one is written to a temporary file of the pod directory and synced,
// renamed over the old one, and the directory is synced. A crash at any
// point leaves the old manifest or the new one, whole.
func WriteManifest(podDir string, pm *schema.PodManifest) (err error) {
	b, err := json.Marshal(pm)
	if err != nil {
		return fmt.Errorf("encode pod manifest: %w", err)
	}
	old, err := os.Stat(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	f, err := os.CreateTemp(podDir, "."+stage1abi.PodManifestFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(old.Mode().Perm()); err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	// The nscn group may read the pod manifest (datadir): keep its group.
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		if err = f.Chown(-1, int(st.Gid)); err != nil {
			return fmt.Errorf("replace pod manifest: %w", err)
		}
	}
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	if err = os.Rename(f.Name(), filepath.Join(podDir, stage1abi.PodManifestFile)); err != nil {
		return fmt.Errorf("replace pod manifest: %w", err)
	}
	d, err := os.Open(podDir) //nolint:gosec // G304: the pod directory
	if err != nil {
		return fmt.Errorf("sync pod directory: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync pod directory: %w", err)
	}
	return nil
}

// State is an app's state in a mutable pod.
type State string

// The states of an app.
const (
	Created State = "created" // added, never started
	Running State = "running" // started, no exit status yet
	Exited  State = "exited"  // has an exit status
	// Unknown: started, no exit status, and the pod is not running.
	Unknown State = "unknown"
)

// Status is an app's status (nscn app status, app list).
type Status struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Image    string    `json:"image,omitempty"`
	ImageID  string    `json:"imageID,omitempty"`
	PID      int       `json:"pid,omitempty"`
	ExitCode *int      `json:"exitCode,omitempty"`
	Created  time.Time `json:"createdAt"`
	Started  time.Time `json:"startedAt,omitzero"`
	Finished time.Time `json:"finishedAt,omitzero"`
}

// List returns the status of every app of pod uuid, in manifest order.
// It takes no lock and works for a pod in any state.
func List(ctx context.Context, dataDir, uuid string) ([]Status, error) {
	p, err := pod.Get(ctx, dataDir, uuid)
	if err != nil {
		return nil, err
	}
	pm, err := p.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	return Statuses(p, pm), nil
}

// Statuses returns the status of every app of pm, the manifest of pod p
// as its caller read it, in manifest order: List for a caller that holds
// both already (the CRI reads them to find its sandboxes).
func Statuses(p *pod.Pod, pm *schema.PodManifest) []Status {
	out := make([]Status, 0, len(pm.Apps))
	for _, ra := range pm.Apps {
		out = append(out, appStatus(p, ra))
	}
	return out
}

// StatusOf returns the status of app in pod uuid.
func StatusOf(ctx context.Context, dataDir, uuid, app string) (Status, error) {
	p, err := pod.Get(ctx, dataDir, uuid)
	if err != nil {
		return Status{}, err
	}
	pm, err := p.Manifest(ctx)
	if err != nil {
		return Status{}, err
	}
	for _, st := range Statuses(p, pm) {
		if st.Name == app {
			return st, nil
		}
	}
	return Status{}, hasApp(pm, p.UUID, app)
}

// appStatus derives an app's status from the pod directory: created when
// stage0 wrote appsinfo/NAME, started per stage1abi.AppStartedFile,
// exited per stage1abi.AppStatusFile.
func appStatus(p *pod.Pod, ra schema.RuntimeApp) Status {
	name := ra.Name.String()
	st := Status{Name: name, State: Created, ImageID: ra.Image.ID.String()}
	if ra.Image.Name != nil {
		st.Image = ra.Image.Name.String()
	}
	if fi, err := os.Stat(filepath.Join(p.Path, stage1abi.AppInfoDir(name), stage1abi.AppManifestFile)); err == nil {
		st.Created = fi.ModTime().UTC()
	}
	if b, fi, err := readSmall(filepath.Join(p.Path, stage1abi.AppStartedFile(name))); err == nil {
		st.State = Running
		st.Started = fi.ModTime().UTC()
		st.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if b, fi, err := readSmall(filepath.Join(p.Path, stage1abi.AppStatusFile(name))); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			st.State = Exited
			st.ExitCode = &n
			st.Finished = fi.ModTime().UTC()
			st.PID = 0
		}
	}
	if st.State == Running && p.State != pod.Running {
		st.State, st.PID = Unknown, 0
	}
	return st
}

// readSmall reads a small regular file, refusing anything else: the
// files live in the stage1 rootfs, which the pod can write.
func readSmall(p string) ([]byte, fs.FileInfo, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > 64 {
		return nil, nil, errors.New("not a small regular file")
	}
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file of the pod directory, checked above
	return b, fi, err
}
