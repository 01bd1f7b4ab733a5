package entrypoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// Resource limits of an app added to a running pod on a v1 (hybrid)
// cgroup host. run creates a run-time app's cgroups host-side below its
// own cgroup, before systemd-nspawn binds the v1 hierarchies read-only
// into the container (setupIsolation). app/add does the same for an
// added app, later: it creates nscn/UUID/APP below the cgroups of the
// pod's pid 1 in each hierarchy (where run and its apps' cgroups are:
// the v1 controllers are not delegated to the pod), records the
// directories in sdpod.IsolationFile as run does (so that enter joins
// them and gc removes them), and binds them into the pod at
// sdpod.CgroupBindDir/APP/HIERARCHY, where the app helper joins them
// before it execs the app, as for a run-time app. app/rm removes them.

// addAppCgroup creates the cgroup of the added app (pod holds it alone)
// with limits l and returns the binds that give it to the pod; the app's
// entry records where its helper finds them (sdpod.CgroupBinds). On
// failure nothing is left.
func (c *appCall) addAppCgroup(ctx context.Context, pod *sdpod.Pod, l cgroup.Limits) (_ []sdpod.Bind, err error) {
	mgr, err := c.podCgroupManager()
	if err != nil {
		return nil, fmt.Errorf("app %s: resource limits: %w", c.args.App, err)
	}
	g, err := mgr.Create(ctx, sdpod.AppCgroupName(c.args.UUID, c.args.App), l)
	if err != nil {
		return nil, fmt.Errorf("app %s: create cgroup: %w", c.args.App, err)
	}
	defer func() {
		if err != nil {
			_ = g.Destroy(context.WithoutCancel(ctx))
		}
	}()
	c.log.DebugContext(ctx, "app cgroup", "dirs", g.Dirs(), "limits", l)
	iso, err := c.loadIsolation()
	if err != nil {
		return nil, err
	}
	if iso.Cgroups == nil {
		iso.Cgroups = map[string][]string{}
	}
	iso.Cgroups[c.args.App] = g.Dirs()
	if err := c.saveIsolation(iso); err != nil {
		return nil, err
	}
	one := &sdpod.Isolation{Cgroups: map[string][]string{c.args.App: g.Dirs()}}
	return sdpod.CgroupBinds(pod, one)
}

// removeAppCgroup removes the added app's cgroup and its record, if it
// has one.
func (c *appCall) removeAppCgroup() error {
	iso, err := c.loadIsolation()
	if err != nil {
		return err
	}
	dirs, ok := iso.Cgroups[c.args.App]
	if !ok {
		return nil
	}
	if err := removeCgroupDirs(c.args.UUID, dirs); err != nil {
		return err
	}
	delete(iso.Cgroups, c.args.App)
	return c.saveIsolation(iso)
}

// podCgroupManager returns the cgroup manager whose parent, in each
// hierarchy, is the cgroup of the pod's pid 1.
func (c *appCall) podCgroupManager() (cgroup.Manager, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mounts, err := mountplan.ParseMountInfo(bytes.NewReader(mi))
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.pid), "cgroup"))
	if err != nil {
		return nil, fmt.Errorf("the pod's cgroups: %w", err)
	}
	self, err := cgroup.ParseProcCgroup(bytes.NewReader(pc))
	if err != nil {
		return nil, fmt.Errorf("the pod's cgroups: %w", err)
	}
	return cgroup.Detect(mounts, self, cgroup.Config{})
}

// loadIsolation reads the pod's isolation record; a pod without one (run
// writes it; an older run did not) has an empty one.
func (c *appCall) loadIsolation() (*sdpod.Isolation, error) {
	iso, err := loadIsolation(c.podDir, c.args.UUID)
	if errors.Is(err, fs.ErrNotExist) {
		return &sdpod.Isolation{}, nil
	}
	return iso, err
}

func (c *appCall) saveIsolation(iso *sdpod.Isolation) error {
	data, err := json.MarshalIndent(iso, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", sdpod.IsolationFile, err)
	}
	return atomicfile.Write(c.podDir, sdpod.IsolationFile, data)
}

// appCgroupBindDir is where the added app's cgroups are bound in the pod.
func appCgroupBindDir(app string) string { return path.Join(sdpod.CgroupBindDir, app) }
