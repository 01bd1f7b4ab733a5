package cgroup

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/nosecone/nscn/internal/errdefs"
)

// V1 creates cgroups in cgroup v1 hierarchies, one per controller.
type V1 struct {
	dirs map[string]string // controller → parent cgroup directory
	ops  dirOps
}

var _ Manager = (*V1)(nil)

// NewV1 returns a V1 that creates groups under the given directories, one
// per controller ("memory", "cpu"): the parent cgroup in that
// controller's hierarchy, such as /sys/fs/cgroup/memory/system.slice.
// Controllers mounted together (cpu,cpuacct) may share a directory.
func NewV1(dirs map[string]string) *V1 {
	d := make(map[string]string, len(dirs))
	for c, p := range dirs {
		d[c] = p
	}
	return &V1{dirs: d, ops: kernelDirs}
}

// Version returns 1.
func (m *V1) Version() int { return 1 }

// Create implements Manager. It writes memory.limit_in_bytes,
// cpu.cfs_period_us and cpu.cfs_quota_us, and cpu.shares.
func (m *V1) Create(_ context.Context, name string, l Limits) (_ Group, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	g := &group{ops: m.ops}
	defer func() {
		if err != nil {
			g.undo()
		}
	}()
	var done []string // hierarchy directories already handled
	for _, c := range l.Controllers() {
		base, ok := m.dirs[c]
		if !ok {
			return nil, errdefs.Unavailable("cgroup v1 controller %s is not mounted", c)
		}
		leaf := filepath.Join(base, name)
		if slices.Contains(done, base) {
			// cpu and cpuacct, say, in one hierarchy: the group exists.
			if err := m.writeLimits(c, leaf, l); err != nil {
				return nil, err
			}
			continue
		}
		made, leaf, err := mkdirChain(m.ops, base, name, nil)
		g.made = append(g.made, made...)
		if err != nil {
			return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
		}
		g.leaves = append(g.leaves, leaf)
		g.bases = append(g.bases, base)
		done = append(done, base)
		if err := m.writeLimits(c, leaf, l); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (m *V1) writeLimits(controller, dir string, l Limits) error {
	var files [][2]string
	switch controller {
	case "memory":
		files = append(files, [2]string{"memory.limit_in_bytes", strconv.FormatInt(l.MemoryMax, 10)})
	case "cpu":
		if l.CPUQuota != 0 {
			// The period first: a quota is checked against it.
			files = append(files,
				[2]string{"cpu.cfs_period_us", strconv.FormatInt(l.period(), 10)},
				[2]string{"cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota, 10)})
		}
		if l.CPUShares != 0 {
			files = append(files, [2]string{"cpu.shares", strconv.FormatUint(l.CPUShares, 10)})
		}
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f[0]), f[1]); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return nil
}

// Update sets limits l on the existing group name (as Create named it)
// in each hierarchy l needs: a running app's new limits. A hierarchy
// where the group does not exist (the app was created without a limit
// of that kind) is an errdefs.ErrFailedPrecondition error, before
// anything is written. The kernel refuses a memory limit below what the
// group uses (EBUSY).
func (m *V1) Update(name string, l Limits) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := l.Validate(); err != nil {
		return err
	}
	dirs := map[string]string{}
	for _, c := range l.Controllers() {
		parent, ok := m.dirs[c]
		if !ok {
			return errdefs.FailedPrecondition("no %s cgroup hierarchy", c)
		}
		dir := filepath.Join(parent, name)
		if _, err := readFile(filepath.Join(dir, "cgroup.procs")); err != nil {
			return errdefs.FailedPrecondition("group %s has no %s cgroup: it was made without a %s limit", name, c, c)
		}
		dirs[c] = dir
	}
	for _, c := range l.Controllers() {
		if err := m.writeLimits(c, dirs[c], l); err != nil {
			return err
		}
	}
	return nil
}
