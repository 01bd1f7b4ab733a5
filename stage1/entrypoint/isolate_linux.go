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
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// reportIsolators tells the user which isolators each app gets: one line
// per app on stderr for what the image or the flags asked for, and every
// entry, nscn's defaults included, in the debug log.
func reportIsolators(ctx context.Context, log *slog.Logger, cfg RunConfig, reports []sdpod.AppReport) {
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
// them with the run flags' isolate.Options in sdpod.IsolationFile, and
// returns the binds that give the pod each app's cgroup directories.
//
// Why host-side: on a hybrid host systemd-nspawn mounts the v1
// controller hierarchies read-only in the container (only name=systemd
// and the unified one are delegated to the pod's systemd), so nothing in
// the pod can create a cgroup there. The app's cgroup, bound read-write
// under sdpod.CgroupBindDir, lets the app helper move itself in before it
// execs the app. The container's cgroup namespace is rooted at run's
// cgroup, so the app's cgroup is inside it and the app sees its own path.
//
// registered records that systemd-machined registers the pod (useMachined).
func setupIsolation(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod *sdpod.Pod, registered bool) (_ []sdpod.Bind, err error) {
	iso := sdpod.Isolation{Options: sdpod.IsolateOptions(cfg.Args.RunArgs), Registered: registered}
	var groups []cgroup.Group
	defer func() {
		if err != nil {
			for _, g := range groups {
				_ = g.Destroy(context.WithoutCancel(ctx))
			}
		}
	}()
	open := func() (cgroup.Manager, error) { return cgroup.Open(cgroup.Config{}) }
	available := func() (string, error) {
		b, err := os.ReadFile(filepath.Join(cgroup.DefaultRoot, "cgroup.controllers"))
		if err != nil {
			return "", fmt.Errorf("read the host's cgroup controllers: %w", err)
		}
		return string(b), nil
	}
	if iso.Cgroups, groups, err = createAppCgroups(ctx, log, open, available, pod, cfg.Stderr); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(iso, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", sdpod.IsolationFile, err)
	}
	if err := atomicfile.Write(podDir, sdpod.IsolationFile, data); err != nil {
		return nil, err
	}
	return sdpod.CgroupBinds(pod, &iso)
}

// createAppCgroups creates, with the Manager open returns (opened only if
// an app has limits), the cgroup sdpod.AppCgroupName of every app with
// resource limits, and returns their directories by app and the groups.
// On failure it destroys what it made.
//
// On a unified (v2) host (pod.CgroupUnified) it makes none: the pod's
// cgroup is delegated to the pod's systemd (joinPodCgroups), which sets
// the limits on the app's unit (writePodFiles). available lists the
// controllers the host offers (the root cgroup's cgroup.controllers);
// an app whose limits need one that is missing is told on stderr that
// they are ignored.
func createAppCgroups(ctx context.Context, log *slog.Logger, open func() (cgroup.Manager, error), available func() (string, error), pod *sdpod.Pod, stderr io.Writer) (_ map[string][]string, groups []cgroup.Group, err error) {
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
	var ctrls *string // available(), read once, when first needed
	for i := range pod.Apps {
		a := &pod.Apps[i]
		if a.Policy == nil || a.Policy.Cgroup.IsZero() {
			continue
		}
		if pod.CgroupUnified {
			if ctrls == nil {
				c, err := available()
				if err != nil {
					return nil, nil, fmt.Errorf("app %s: resource limits: %w", a.Spec.Name, err)
				}
				ctrls = &c
			}
			if missing := a.Policy.Cgroup.MissingFrom(*ctrls); len(missing) > 0 {
				_, _ = fmt.Fprintf(stderr, "stage1-nspawn: app %s: resource limits ignored: the host's unified cgroup hierarchy has no %s controller\n", a.Spec.Name, strings.Join(missing, " or "))
				p := *a.Policy // a copy: apps may share one policy
				p.Cgroup = cgroup.Limits{}
				a.Policy = &p
				continue
			}
			log.DebugContext(ctx, "app limits on its unit (cgroup v2)", "app", a.Spec.Name, "limits", a.Policy.Cgroup)
			continue
		}
		if mgr == nil {
			if mgr, err = open(); err != nil {
				return nil, nil, fmt.Errorf("app %s: resource limits: %w", a.Spec.Name, err)
			}
		}
		g, err := mgr.Create(ctx, sdpod.AppCgroupName(pod.UUID, a.Spec.Name), a.Policy.Cgroup)
		if err != nil {
			return nil, groups, fmt.Errorf("app %s: create cgroup: %w", a.Spec.Name, err)
		}
		groups = append(groups, g)
		dirs[a.Spec.Name] = g.Dirs()
		log.DebugContext(ctx, "app cgroup", "app", a.Spec.Name, "dirs", g.Dirs(), "limits", a.Policy.Cgroup)
	}
	return dirs, groups, nil
}

// loadIsolation reads sdpod.IsolationFile of a pod; a pod started
// before it existed has none (os.ErrNotExist).
func loadIsolation(podDir, uuid string) (*sdpod.Isolation, error) {
	data, err := os.ReadFile(filepath.Join(podDir, sdpod.IsolationFile)) //nolint:gosec // G304: a file in the pod directory or a cgroup control file
	if err != nil {
		return nil, fmt.Errorf("read pod isolation: %w", err)
	}
	return sdpod.ParseIsolation(data, uuid)
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
		errs = append(errs, removeCgroupDirs(uuid, dirs))
	}
	return errors.Join(errs...)
}

// removeCgroupDirs kills what is left in one app's cgroup directories
// and removes them with the nscn/UUID and nscn directories above them
// that nothing else uses.
func removeCgroupDirs(uuid string, dirs []string) error {
	for range 50 {
		if killCgroupProcs(dirs) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
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
	return errors.Join(errs...)
}
