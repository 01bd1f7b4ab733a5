package appentry

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
	"strconv"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/entry"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/podattach"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Op is one of a flavor's app entrypoint operations (app/add, app/start,
// app/stop, app/rm).
type Op func(ctx context.Context, log *slog.Logger, args abiargs.AppArgs) error

// Main is the whole of an app entrypoint's main, argv being
// [--debug] [--disable-…] --uuid=UUID --app=NAME: it runs op with the
// flavor's logger and returns the exit status, 0, or
// stage1abi.ExitRuntime with one line on stderr.
func Main(ctx context.Context, f entry.Flavor, op Op) int {
	args, err := abiargs.ParseAppArgs(os.Args[1:])
	if err == nil {
		err = op(ctx, f.Logger(os.Stderr, args.Debug || entry.DebugFromEnv()), args)
	}
	if err != nil {
		_, _ = fmt.Fprintln(os.Stderr, f.ErrorLine(err))
		return stage1abi.ExitRuntime
	}
	return 0
}

// CheckCall checks what every app entrypoint starts from: its working
// directory is the directory of pod args.UUID, and stage0 passed a pid
// (stage1abi.EnvEnterPID). It returns both; the flavor checks that the
// pid is its running pod's.
func CheckCall(args abiargs.AppArgs) (podDir string, pid int, err error) {
	podDir, err = unix.Getwd()
	if err != nil {
		return "", 0, fmt.Errorf("get pod directory: %w", err)
	}
	if filepath.Base(podDir) != args.UUID {
		return "", 0, errdefs.InvalidArgument("the working directory %s is not the directory of pod %s", podDir, args.UUID)
	}
	v := os.Getenv(stage1abi.EnvEnterPID)
	pid, err = strconv.Atoi(v)
	if err != nil || pid <= 0 {
		return "", 0, errdefs.InvalidArgument("%s=%q is not the pid of the pod", stage1abi.EnvEnterPID, v)
	}
	return podDir, pid, nil
}

// Record is what run leaves in the pod directory, out of the pod's
// reach, for the app entrypoints of a mutable pod: the run arguments and
// the files run generated from the pod's network, which an added app's
// layout needs as a run-time app's did. It holds the metadata service
// token: its file has mode 0600. A flavor may record more beside it, in
// a type that embeds it.
type Record struct {
	Args        sdpod.RunArgs `json:"args"`
	ResolvConf  string        `json:"resolvConf,omitempty"`
	Hosts       string        `json:"hosts,omitempty"`
	MetadataURL string        `json:"metadataURL,omitempty"`
}

// NewRecord is the record of the pod run lays out with lc.
func NewRecord(lc sdpod.LayoutConfig) Record {
	return Record{Args: lc.Args, ResolvConf: lc.ResolvConf, Hosts: lc.Hosts, MetadataURL: lc.MetadataURL}
}

// WriteRecord writes v, a Record or a flavor's type that embeds one, to
// the file name of the pod directory, which must not exist, mode 0600.
func WriteRecord(podDir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	p := filepath.Join(podDir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600) //nolint:gosec // G304: a file of the pod directory, out of the pod's reach
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}

// ReadRecord reads the file name of the pod directory into v, as
// WriteRecord wrote it. A pod without the file was not started with
// --mutable (FailedPrecondition).
func ReadRecord(podDir, name string, v any) error {
	data, err := os.ReadFile(filepath.Join(podDir, name)) //nolint:gosec // G304: a file in the pod directory
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.FailedPrecondition("the pod was not started as a mutable pod (nscn app sandbox): its apps cannot change")
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errdefs.Newf(errdefs.ErrInvalidArgument, "parse %s: %w", name, err)
	}
	return nil
}

// Added is the app app/add adds: its entry in the pod manifest, which
// stage0 has updated, and what run recorded of the pod.
type Added struct {
	PodDir   string
	Record   *Record
	Manifest *schema.PodManifest
	App      *schema.RuntimeApp
}

// LoadAdded refuses --insecure-options the pod was not started with
// (sdpod.CheckAddedAppOptions) and reads the app's entry of the pod
// manifest.
func LoadAdded(podDir string, rec *Record, args abiargs.AppArgs) (*Added, error) {
	if err := sdpod.CheckAddedAppOptions(args, rec.Args.RunArgs); err != nil {
		return nil, err
	}
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return nil, err
	}
	ra, err := sdpod.RuntimeApp(pm, args.App)
	if err != nil {
		return nil, err
	}
	return &Added{PodDir: podDir, Record: rec, Manifest: pm, App: ra}, nil
}

// Layout computes the app's layout as run computes a run-time app's
// (sdpod.NewLayout: the same process spec, mount plan and isolation
// policy), its host paths bound below a directory of its own
// (sdpod.AppBindDir), and logs the layout's warnings and isolator
// reports. The app is the layout's only one, layout.Pod.Apps[0].
func (a *Added) Layout(ctx context.Context, log *slog.Logger) (sdpod.Layout, error) {
	one := *a.Manifest
	one.Apps = []schema.RuntimeApp{*a.App}
	layout, err := sdpod.NewLayout(sdpod.LayoutConfig{
		PodDir: a.PodDir, Manifest: &one, Args: a.Record.Args,
		ResolvConf: a.Record.ResolvConf, Hosts: a.Record.Hosts, MetadataURL: a.Record.MetadataURL,
		BindDir: sdpod.AppBindDir(a.App.Name.String()),
	})
	if err != nil {
		return sdpod.Layout{}, err
	}
	for _, w := range layout.Warnings {
		log.WarnContext(ctx, w)
	}
	for _, r := range layout.Reports {
		if s := r.Summary(); s != "" {
			log.InfoContext(ctx, s)
		}
	}
	return layout, nil
}

// CheckBinds checks the sources of a layout's binds on the host, as run
// does before the pod starts: an optional bind whose source is absent is
// dropped, another absent source is an error (NotFound); a bind that
// refuses symlinks (sdpod.Bind.NoSymlinks) is opened without following
// any.
func CheckBinds(ctx context.Context, log *slog.Logger, binds []sdpod.Bind) ([]sdpod.Bind, error) {
	var out []sdpod.Bind
	for _, b := range binds {
		var err error
		if b.NoSymlinks {
			var f *os.File
			if f, err = inroot.OpenNoSymlinks(b.Source, unix.O_PATH); err == nil {
				_ = f.Close()
			}
		} else {
			_, err = os.Stat(b.Source)
		}
		if err != nil {
			if b.Optional && errors.Is(err, fs.ErrNotExist) {
				log.DebugContext(ctx, "skip optional bind: no source on the host", "source", b.Source)
				continue
			}
			return nil, errdefs.With(errdefs.ErrNotFound, fmt.Errorf("bind %s into the pod: %w", b.Source, err))
		}
		out = append(out, b)
	}
	return out, nil
}

// Attachments are what app/add attaches into the running pod for app:
// the rootfs stage0 mounted (recursively), then the host paths of its
// binds, as CheckBinds kept them.
func Attachments(podDir, app string, binds []sdpod.Bind) []podattach.Attachment {
	out := []podattach.Attachment{{Source: filepath.Join(podDir, stage1abi.AppRootfs(app)), Target: path.Join(sdpod.Stage2Dir, app, "rootfs"), Recursive: true}}
	for _, b := range binds {
		out = append(out, podattach.Attachment{Source: b.Source, Target: b.Target, Recursive: b.Recursive, ReadOnly: b.ReadOnly, ReadOnlyTop: b.ReadOnlyTop})
	}
	return out
}

// AppFiles are the files and directories, relative to the pod
// directory, that app/add and the app's runs leave in the stage1 rootfs
// for an added app beside its units and mounts: its I/O FIFOs, its
// credentials record, its bind mount points, its start and status
// records. app/rm removes them all.
func AppFiles(app string) []string {
	in := func(p string) string { return path.Join(stage1abi.Stage1RootfsRel, p) }
	return []string{
		in(path.Dir(sdpod.AppStdoutFIFO(app))),
		in(sdpod.CredsFile(app)),
		in(sdpod.AppBindDir(app)),
		stage1abi.AppStartedFile(app),
		stage1abi.AppStatusFile(app),
	}
}

// StartWait bounds how long app/start waits for a unit it started to
// settle.
const StartWait = 10 * time.Second

// Start is what WaitStarted checks of an app app/start started.
type Start struct {
	PodDir, App string
	// State is the unit's active state, as the start left it.
	State string
	// ActiveState asks the pod's systemd for the unit's active state
	// again, every Poll.
	ActiveState func(context.Context) (string, error)
	Poll        time.Duration
}

// WaitStarted waits, for StartWait at most, while the app's unit is
// deactivating or reloading: an app that exits at once leaves its unit
// deactivating (its reap step records the status) on the way to
// inactive. The app started if its unit is then active or activating, or
// if it has a status (it ran, and has exited already); otherwise the
// error (FailedPrecondition) sends the user to its logs.
func WaitStarted(ctx context.Context, s Start) error {
	state := s.State
	for deadline := time.Now().Add(StartWait); (state == "deactivating" || state == "reloading") && time.Now().Before(deadline); {
		time.Sleep(s.Poll)
		var err error
		if state, err = s.ActiveState(ctx); err != nil {
			return err
		}
	}
	if state != "active" && state != "activating" {
		if _, err := os.Stat(filepath.Join(s.PodDir, stage1abi.AppStatusFile(s.App))); err != nil {
			return errdefs.FailedPrecondition("app %s did not start (its unit is %s); see nscn logs", s.App, state)
		}
	}
	return nil
}
