package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
)

// V2 creates cgroups in the unified (cgroup v2) hierarchy.
type V2 struct {
	mount  string // where cgroup2 is mounted
	parent string // parent cgroup, relative to mount ("." for the root)
	ops    dirOps
}

var _ Manager = (*V2)(nil)

// NewV2 returns a V2 for the cgroup2 filesystem mounted at mount that
// creates groups under parent, a cgroup path relative to the mount ("" or
// "." for the root cgroup).
func NewV2(mount, parent string) *V2 {
	parent = filepath.Clean("./" + parent)
	return &V2{mount: mount, parent: parent, ops: kernelDirs}
}

// Version returns 2.
func (m *V2) Version() int { return 2 }

// Create implements Manager. The controllers l needs must be available in
// the parent cgroup (its cgroup.controllers); Create enables them in the
// cgroup.subtree_control of the parent and of every cgroup below it down
// to the group. The kernel refuses that (EBUSY) when the parent, other
// than the root, has processes of its own ("no internal processes"):
// run nscn from a cgroup whose only content is nscn's groups, or set
// Config.Parent to such a cgroup. Create writes memory.max, cpu.max and
// cpu.weight.
func (m *V2) Create(_ context.Context, name string, l Limits) (_ Group, err error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	g := &group{ops: m.ops}
	ctrls := l.Controllers()
	if len(ctrls) == 0 {
		return g, nil
	}
	parent := filepath.Join(m.mount, m.parent)
	avail, err := readFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	if missing := l.MissingFrom(avail); len(missing) > 0 {
		return nil, errdefs.Unavailable("cgroup v2 controller %s is not available in %s (cgroup.controllers: %q)", missing[0], parent, avail)
	}
	defer func() {
		if err != nil {
			g.undo()
		}
	}()
	if err := enable(parent, ctrls); err != nil {
		return nil, err
	}
	made, leaf, err := mkdirChain(m.ops, parent, name, func(dir string) error { return enable(dir, ctrls) })
	g.made = made
	if err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	g.leaves = []string{leaf}
	g.bases = []string{parent}
	var files [][2]string
	if l.MemoryMax != 0 {
		files = append(files, [2]string{"memory.max", strconv.FormatInt(l.MemoryMax, 10)})
	}
	if l.CPUQuota != 0 {
		files = append(files, [2]string{"cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, l.period())})
	}
	if l.CPUShares != 0 {
		files = append(files, [2]string{"cpu.weight", strconv.FormatUint(SharesToWeight(l.CPUShares), 10)})
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(leaf, f[0]), f[1]); err != nil {
			return nil, fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return g, nil
}

// enable turns the controllers on in dir's cgroup.subtree_control, in one
// write, unless they are on already.
func enable(dir string, ctrls []string) error {
	p := filepath.Join(dir, "cgroup.subtree_control")
	cur, err := readFile(p)
	if err != nil {
		return err
	}
	var add []string
	for _, c := range ctrls {
		if !slices.Contains(strings.Fields(cur), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	err = writeFile(p, strings.Join(add, " "))
	if errors.Is(err, syscall.EBUSY) {
		return errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("enable cgroup controllers in %s, which has processes of its own (set a parent cgroup that holds none): %w", dir, err))
	}
	if err != nil {
		return fmt.Errorf("enable cgroup controllers: %w", err)
	}
	return nil
}

// Delegated are the controllers Delegate hands a container: those of
// the limits nscn sets (cpu, memory) and pids, which systemd uses for a
// unit's TasksMax=. Others (cpuset, io, ...) are left alone: enabling
// one can fail on a host for reasons of its own (the cpu controller
// refuses while realtime processes sit outside the root cgroup, which
// nscn cannot change), and nothing in a pod needs them.
var Delegated = []string{"cpu", "memory", "pids"}

// Delegate makes the cgroup name (below the manager's parent) for a
// container manager such as systemd-nspawn, and returns its directory,
// where the caller starts the manager (clone3's CLONE_INTO_CGROUP). The
// controllers of Delegated that the parent offers (its
// cgroup.controllers) are enabled in cgroup.subtree_control from the
// parent down to name's parent, so that they are available in name. They
// are not enabled in name itself: a cgroup that passes controllers on
// cannot take processes ("no internal processes"). The manager does
// that: systemd-nspawn moves itself to name/supervisor and the container
// to name/payload, then enables the controllers in name for the
// payload, whose init (the pod's systemd) sets an app unit's MemoryMax=
// and CPUQuota= on cgroups of its own. name must not exist.
func (m *V2) Delegate(_ context.Context, name string) (_ string, err error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	parent := filepath.Join(m.mount, m.parent)
	avail, err := readFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return "", err
	}
	var ctrls []string
	for _, c := range strings.Fields(avail) {
		if slices.Contains(Delegated, c) {
			ctrls = append(ctrls, c)
		}
	}
	g := &group{ops: m.ops}
	defer func() {
		if err != nil {
			g.undo()
		}
	}()
	if err := enable(parent, ctrls); err != nil {
		return "", err
	}
	made, dir, err := mkdirChain(m.ops, parent, name, func(dir string) error { return enable(dir, ctrls) })
	g.made = made
	if err != nil {
		return "", fmt.Errorf("cgroup v2: %w", err)
	}
	return dir, nil
}
