package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
)

// managed are the v1 controllers V1 writes to.
var managed = []string{"cpu", "memory"}

func readProc() ([]mountplan.MountInfo, []Membership, error) {
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, fmt.Errorf("detect cgroup layout: %w", err)
	}
	defer func() { _ = mi.Close() }()
	mounts, err := mountplan.ParseMountInfo(mi)
	if err != nil {
		return nil, nil, fmt.Errorf("detect cgroup layout: %w", err)
	}
	pc, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, nil, fmt.Errorf("detect cgroup layout: %w", err)
	}
	defer func() { _ = pc.Close() }()
	self, err := ParseProcCgroup(pc)
	if err != nil {
		return nil, nil, fmt.Errorf("detect cgroup layout: %w", err)
	}
	return mounts, self, nil
}

// layout is what Detect and Current learn from /proc: where each
// controller's hierarchy is mounted and where the process sits in it.
type layout struct {
	version int
	// v2: the cgroup2 mount, and the process's cgroup in it.
	mount, root, self string
	// v1: per managed controller.
	v1 map[string]v1Mount
}

type v1Mount struct{ mountPoint, root, self string }

// findLayout decides the layout: unified when a cgroup2 filesystem is
// mounted at root itself, v1 (legacy or hybrid) when a v1 hierarchy holds
// one of the managed controllers. In the hybrid layout the cgroup2
// hierarchy (usually at root/unified) has no controllers and is ignored.
func findLayout(mounts []mountplan.MountInfo, self []Membership, root string) (layout, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = filepath.Clean(root)
	for _, m := range mounts {
		if m.FSType == "cgroup2" && filepath.Clean(m.MountPoint) == root {
			if p, ok := UnifiedPath(self); ok {
				return layout{version: 2, mount: m.MountPoint, root: m.Root, self: p}, nil
			}
			return layout{}, errdefs.FailedPrecondition("cgroup2 is mounted at %s but /proc/self/cgroup has no 0:: line", root)
		}
	}
	l := layout{version: 1, v1: map[string]v1Mount{}}
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		opts := strings.Split(m.SuperOptions, ",")
		for _, c := range managed {
			if !slices.Contains(opts, c) {
				continue
			}
			if _, dup := l.v1[c]; dup {
				continue // the same hierarchy mounted twice; the first will do
			}
			for _, s := range self {
				if slices.Contains(s.Controllers, c) {
					l.v1[c] = v1Mount{mountPoint: m.MountPoint, root: m.Root, self: s.Path}
				}
			}
		}
	}
	if len(l.v1) == 0 {
		return layout{}, errdefs.Unavailable("no cgroup v2 filesystem at %s and no cgroup v1 hierarchy with the cpu or memory controller", root)
	}
	return l, nil
}

// Detect returns the Manager for a host whose mounts and own cgroups are
// given (parsed /proc/self/mountinfo and /proc/self/cgroup); it does no
// I/O. It returns a V2 when a cgroup2 filesystem is mounted at cfg.Root,
// a V1 otherwise (legacy and hybrid layouts), and an
// errdefs.ErrUnavailable error when neither holds a controller V1 uses.
func Detect(mounts []mountplan.MountInfo, self []Membership, cfg Config) (Manager, error) {
	l, err := findLayout(mounts, self, cfg.Root)
	if err != nil {
		return nil, err
	}
	if l.version == 2 {
		parent := l.self
		if cfg.Parent != "" {
			parent = cfg.Parent
		}
		if _, err := underMount(l.mount, l.root, parent); err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(l.root, parent)
		return NewV2(l.mount, rel), nil
	}
	dirs := map[string]string{}
	for c, m := range l.v1 {
		parent := m.self
		if cfg.Parent != "" {
			parent = cfg.Parent
		}
		d, err := underMount(m.mountPoint, m.root, parent)
		if err != nil {
			return nil, err
		}
		dirs[c] = d
	}
	return NewV1(dirs), nil
}
