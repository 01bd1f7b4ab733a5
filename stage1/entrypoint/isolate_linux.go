package entrypoint

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
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// reportIsolators tells the user which isolators each app gets: one line
// per app on stderr for what the image or the flags asked for, and every
// entry, nscn's defaults included, in the debug log.
func reportIsolators(ctx context.Context, log *slog.Logger, cfg RunConfig, reports []nspawn.AppReport) {
	for _, r := range reports {
		if cfg.Args.Debug {
			r.Report.Log(ctx, log.With("app", r.App))
		}
		if s := r.Summary(); s != "" {
			_, _ = fmt.Fprintln(cfg.Stderr, "stage1-nspawn: "+s)
		}
	}
}

// setupIsolation creates the cgroup of every app with resource limits,
// below run's own cgroup in each v1 hierarchy (nscn/UUID/APP), records
// them with the run flags' isolate.Options in nspawn.IsolationFile, and
// returns the binds that give the pod each app's cgroup directories.
//
// Why host-side: on a hybrid host systemd-nspawn mounts the v1
// controller hierarchies read-only in the container (only name=systemd
// and the unified one are delegated to the pod's systemd), so nothing in
// the pod can create a cgroup there. The app's cgroup, bound read-write
// under nspawn.CgroupBindDir, lets the app helper move itself in before it
// execs the app. The container's cgroup namespace is rooted at run's
// cgroup, so the app's cgroup is inside it and the app sees its own path.
func setupIsolation(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod *nspawn.Pod) (_ []nspawn.Bind, err error) {
	iso := nspawn.Isolation{Options: nspawn.IsolateOptions(cfg.Args.RunArgs)}
	var groups []cgroup.Group
	defer func() {
		if err != nil {
			for _, g := range groups {
				_ = g.Destroy(context.WithoutCancel(ctx))
			}
		}
	}()
	open := func() (cgroup.Manager, error) { return cgroup.Open(cgroup.Config{}) }
	if iso.Cgroups, groups, err = createAppCgroups(ctx, log, open, pod, cfg.Stderr); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(iso, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", nspawn.IsolationFile, err)
	}
	if err := atomicfile.Write(podDir, nspawn.IsolationFile, data); err != nil {
		return nil, err
	}
	return nspawn.CgroupBinds(pod, &iso)
}

// createAppCgroups creates, with the Manager open returns (opened only if
// an app has limits), the cgroup nspawn.AppCgroupName of every app with
// resource limits, and returns their directories by app and the groups.
// On failure it destroys what it made. On a unified (v2) host it makes
// none and says on stderr that the limits are ignored.
func createAppCgroups(ctx context.Context, log *slog.Logger, open func() (cgroup.Manager, error), pod *nspawn.Pod, stderr io.Writer) (_ map[string][]string, groups []cgroup.Group, err error) {
	dirs := map[string][]string{}
	defer func() {
		if err != nil {
			for _, g := range groups {
				_ = g.Destroy(context.WithoutCancel(ctx))
			}
			groups = nil
		}
	}()
	var mgr cgroup.Manager
	for _, a := range pod.Apps {
		if a.Policy == nil || a.Policy.Cgroup.IsZero() {
			continue
		}
		if mgr == nil {
			if mgr, err = open(); err != nil {
				return nil, nil, fmt.Errorf("app %s: resource limits: %w", a.Spec.Name, err)
			}
		}
		if mgr.Version() != 1 {
			// TODO(iso): on the unified hierarchy the container's cgroup
			// is delegated to the pod's systemd; the limits belong in
			// the app's unit (MemoryMax=, CPUQuota=, CPUWeight=). #4
			_, _ = fmt.Fprintf(stderr, "stage1-nspawn: app %s: resource limits ignored: stage1-nspawn sets them on cgroup v1 hierarchies only\n", a.Spec.Name)
			continue
		}
		g, err := mgr.Create(ctx, nspawn.AppCgroupName(pod.UUID, a.Spec.Name), a.Policy.Cgroup)
		if err != nil {
			return nil, groups, fmt.Errorf("app %s: create cgroup: %w", a.Spec.Name, err)
		}
		groups = append(groups, g)
		dirs[a.Spec.Name] = g.Dirs()
		log.DebugContext(ctx, "app cgroup", "app", a.Spec.Name, "dirs", g.Dirs(), "limits", a.Policy.Cgroup)
	}
	return dirs, groups, nil
}

// loadIsolation reads nspawn.IsolationFile of a pod; a pod started
// before it existed has none (os.ErrNotExist).
func loadIsolation(podDir, uuid string) (*nspawn.Isolation, error) {
	data, err := os.ReadFile(filepath.Join(podDir, nspawn.IsolationFile)) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return nil, fmt.Errorf("read pod isolation: %w", err)
	}
	return nspawn.ParseIsolation(data, uuid)
}

// removeAppCgroups kills what is left in the apps' cgroups and removes
// them with the nscn/UUID directories above them, for gc: it works from
// the record, so also after run was killed.
func removeAppCgroups(podDir, uuid string) error {
	iso, err := loadIsolation(podDir, uuid)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, dirs := range iso.Cgroups {
		for range 50 {
			if killCgroupProcs(dirs) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &os.PathError{Op: "rmdir", Path: d, Err: err})
				continue
			}
			// nscn/UUID, then nscn, unless another pod or app uses them.
			pod := filepath.Dir(d)
			for _, p := range []string{pod, filepath.Dir(pod)} {
				if !strings.HasSuffix(p, "/nscn") && !strings.HasSuffix(p, "/nscn/"+uuid) {
					break
				}
				if err := unix.Rmdir(p); err != nil {
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// joinAppCgroup moves the calling process into the app's cgroups, bound
// into the pod (nspawn.App.Cgroups), before it execs the app.
func joinAppCgroup(app *nspawn.App) error {
	for h, dir := range app.Cgroups {
		if err := writeCgroupProcs(dir, "0"); err != nil {
			return fmt.Errorf("join app cgroup %s: %w", h, err)
		}
	}
	return nil
}

// writeCgroupProcs writes one value to dir/cgroup.procs ("0": the
// writer).
func writeCgroupProcs(dir, v string) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a cgroup control file
	if err != nil {
		return err
	}
	if _, err := f.WriteString(v); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Close()
}

// mountAppCgroup puts, in the app's view, its own cgroup (read-only) over
// each hierarchy that has one, so that the app reads its limits at the
// top of the hierarchy (/sys/fs/cgroup/memory/memory.limit_in_bytes) as
// well as at the path /proc/self/cgroup names, and sees no other app's.
func mountAppCgroup(ctx context.Context, log *slog.Logger, root *os.File, app *nspawn.App) error {
	for h, dir := range app.Cgroups {
		t, ok, err := openRestricted(root, "/sys/fs/cgroup/"+h)
		if err != nil {
			return err
		}
		if !ok {
			log.DebugContext(ctx, "no cgroup hierarchy in the app's /sys", "hierarchy", h)
			continue
		}
		log.DebugContext(ctx, "mount app cgroup", "hierarchy", h, "source", dir)
		err = cloneOnto(t, unix.AT_FDCWD, dir, 0, "/sys/fs/cgroup/"+h)
		_ = t.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
