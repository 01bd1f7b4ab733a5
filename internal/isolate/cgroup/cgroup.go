package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// DefaultCPUPeriod is the CFS period, in microseconds, of a CPU limit: the
// kernel's default, 100ms.
const DefaultCPUPeriod = 100000

// Limits are the resource limits of one cgroup. A zero field sets
// nothing, so the kernel default (no limit) stays.
type Limits struct {
	// MemoryMax is the memory limit in bytes.
	MemoryMax int64 `json:"memoryMax,omitempty"`
	// CPUQuota is how many microseconds the group may run in each
	// CPUPeriod (DefaultCPUPeriod when 0); 50000 of 100000 is half a
	// core, 200000 two cores.
	CPUQuota  int64 `json:"cpuQuota,omitempty"`
	CPUPeriod int64 `json:"cpuPeriod,omitempty"`
	// CPUShares is the relative CPU weight in cgroup v1 units, 2 to
	// 262144 (1024 is the default). V2 converts it to cpu.weight.
	CPUShares uint64 `json:"cpuShares,omitempty"`
}

// IsZero reports whether l sets nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

func (l Limits) period() int64 {
	if l.CPUPeriod == 0 {
		return DefaultCPUPeriod
	}
	return l.CPUPeriod
}

// Validate checks the ranges the kernel accepts.
func (l Limits) Validate() error {
	switch {
	case l.MemoryMax < 0:
		return errdefs.InvalidArgument("memory limit %d is negative", l.MemoryMax)
	case l.CPUQuota < 0:
		return errdefs.InvalidArgument("cpu quota %d is negative", l.CPUQuota)
	case l.CPUQuota > 0 && l.CPUQuota < 1000:
		return errdefs.InvalidArgument("cpu quota %dµs is below the kernel minimum of 1000µs", l.CPUQuota)
	case l.CPUPeriod != 0 && (l.CPUPeriod < 1000 || l.CPUPeriod > 1000000):
		return errdefs.InvalidArgument("cpu period %dµs is outside 1000µs to 1s", l.CPUPeriod)
	case l.CPUShares != 0 && (l.CPUShares < 2 || l.CPUShares > 262144):
		return errdefs.InvalidArgument("cpu shares %d is outside 2 to 262144", l.CPUShares)
	}
	return nil
}

// Controllers returns the controllers l needs ("cpu", "memory"), sorted.
func (l Limits) Controllers() []string {
	var out []string
	if l.CPUQuota != 0 || l.CPUShares != 0 {
		out = append(out, "cpu")
	}
	if l.MemoryMax != 0 {
		out = append(out, "memory")
	}
	return out
}

// MissingFrom lists the controllers l needs (Controllers) that are not
// in available, the content of a cgroup.controllers file.
func (l Limits) MissingFrom(available string) []string {
	have := strings.Fields(available)
	var out []string
	for _, c := range l.Controllers() {
		if !slices.Contains(have, c) {
			out = append(out, c)
		}
	}
	return out
}

// SharesToWeight converts cgroup v1 cpu.shares (2 to 262144, default
// 1024) to cgroup v2 cpu.weight (1 to 10000, default 100) by mapping one
// range linearly onto the other, as the kernel documentation suggests
// (Documentation/admin-guide/cgroup-v2.rst, "Weights"). 1024 gives 39, not
// 100: the defaults do not line up linearly.
func SharesToWeight(shares uint64) uint64 {
	if shares < 2 {
		shares = 2
	}
	if shares > 262144 {
		shares = 262144
	}
	return 1 + (shares-2)*9999/262142
}

// weightToShares is the inverse of SharesToWeight, rounded down.
func weightToShares(weight uint64) uint64 {
	if weight < 1 {
		weight = 1
	}
	return 2 + (weight-1)*262142/9999
}

// Manager creates cgroups in one layout.
//
// Lifecycle: the stage1 calls Create before it starts the app, with the
// limits of the app's policy; Create makes the cgroup and writes the
// limits. The stage1 starts the app's process held back (for instance
// blocked on a pipe), moves it in with Group.Add, then lets it exec the
// app, so that the app never runs outside its cgroup. When the app has
// exited and been reaped, the stage1 calls Group.Destroy, which removes
// the cgroup and the directories Create made for it.
type Manager interface {
	// Create makes the cgroup name, a slash-separated path relative to
	// the manager's parent cgroup (such as "nscn/<pod>/<app>"), with
	// limits l. Missing intermediate cgroups are created; an existing
	// leaf is an errdefs.ErrAlreadyExists. A controller l needs that the
	// host lacks is an errdefs.ErrUnavailable. With a zero l Create
	// makes nothing and returns a Group whose methods do nothing.
	Create(ctx context.Context, name string, l Limits) (Group, error)
	// Version is 1 or 2.
	Version() int
}

// Group is one app's cgroup, in every hierarchy that holds one of its
// controllers.
type Group interface {
	// Add moves process pid, all its threads, into the group.
	Add(pid int) error
	// Dirs lists the group's directories on the host, one per hierarchy.
	Dirs() []string
	// Destroy removes the group, waiting while the kernel still counts
	// exited processes in it, and then the intermediate cgroups Create
	// made that nothing else uses. It fails if processes are left.
	Destroy(ctx context.Context) error
}

// Config says where a Manager works.
type Config struct {
	// Root is the mount point of the cgroup filesystems:
	// /sys/fs/cgroup when empty. A cgroup2 filesystem mounted exactly
	// there means the unified layout.
	Root string
	// Parent is the cgroup, as /proc/self/cgroup spells paths, under
	// which groups are created. Empty means the calling process's own
	// cgroup in each hierarchy.
	Parent string
}

// DefaultRoot is where cgroup filesystems are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// Open reads /proc/self/mountinfo and /proc/self/cgroup and returns the
// Manager for the host's layout (see Detect).
func Open(cfg Config) (Manager, error) {
	mounts, self, err := readProc()
	if err != nil {
		return nil, err
	}
	return Detect(mounts, self, cfg)
}

// Membership is one line of /proc/<pid>/cgroup (cgroups(7)): a hierarchy,
// its controllers (none for the unified hierarchy) and the process's
// cgroup in it.
type Membership struct {
	ID          int
	Controllers []string
	Path        string
}

// UnifiedPath returns the process's cgroup in the unified (v2) hierarchy:
// the path of the "0::" line of /proc/<pid>/cgroup.
func UnifiedPath(ms []Membership) (string, bool) {
	for _, m := range ms {
		if m.ID == 0 && len(m.Controllers) == 0 {
			return m.Path, true
		}
	}
	return "", false
}

// ParseProcCgroup reads /proc/<pid>/cgroup. It does no I/O beyond r.
func ParseProcCgroup(r io.Reader) ([]Membership, error) {
	var out []Membership
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("parse /proc/self/cgroup line %d: %q is not id:controllers:path", n, line)
		}
		num, err := strconv.Atoi(id)
		if err != nil || num < 0 {
			return nil, fmt.Errorf("parse /proc/self/cgroup line %d: hierarchy id %q", n, id)
		}
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("parse /proc/self/cgroup line %d: path %q is not absolute", n, p)
		}
		m := Membership{ID: num, Path: p}
		if ctrls != "" {
			m.Controllers = strings.Split(ctrls, ",")
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return out, nil
}

// checkName refuses a group name that is empty, absolute or leaves the
// parent.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == ".." {
		return errdefs.InvalidArgument("cgroup name %q must be a clean relative path", name)
	}
	return nil
}

// underMount maps cgroup path p to a directory under the mount point of a
// hierarchy whose root (mountinfo field 4) is root.
func underMount(mountPoint, root, p string) (string, error) {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errdefs.FailedPrecondition("cgroup %s is outside the hierarchy mounted at %s (root %s)", p, mountPoint, root)
	}
	return filepath.Join(mountPoint, rel), nil
}

// writeFile writes one value to an existing control file, as the
// kernel expects: one write(2), no creation.
func writeFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|syscall.O_CLOEXEC, 0) //nolint:gosec // G304: a cgroup control file
	if err != nil {
		return fmt.Errorf("write cgroup file: %w", err)
	}
	if _, err := f.WriteString(value); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p) //nolint:gosec // G304: a cgroup control file
	if err != nil {
		return "", fmt.Errorf("read cgroup file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// dirOps makes and removes cgroup directories. Tests replace it to
// emulate cgroupfs in a plain directory: the kernel fills a new cgroup
// with control files, and removes one that still holds them.
type dirOps struct {
	mkdir func(dir string) error
	rmdir func(dir string) error
}

var kernelDirs = dirOps{
	mkdir: func(dir string) error { return os.Mkdir(dir, 0o755) },
	rmdir: func(dir string) error {
		if err := syscall.Rmdir(dir); err != nil {
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		return nil
	},
}

// mkdirChain makes base/name component by component. It returns the
// directories it made, shallowest first, and the leaf, which must not
// exist. each runs on every existing or new directory above the leaf,
// top-down, before the next one is made.
func mkdirChain(ops dirOps, base, name string, each func(dir string) error) (made []string, leaf string, err error) {
	dir := base
	parts := strings.Split(name, "/")
	for i, part := range parts {
		dir = filepath.Join(dir, part)
		err := ops.mkdir(dir)
		last := i == len(parts)-1
		switch {
		case err == nil:
			made = append(made, dir)
		case errors.Is(err, fs.ErrExist) && !last:
		case errors.Is(err, fs.ErrExist):
			return made, "", errdefs.With(errdefs.ErrAlreadyExists, fmt.Errorf("create cgroup: %w", err))
		default:
			return made, "", fmt.Errorf("create cgroup: %w", err)
		}
		if !last && each != nil {
			if err := each(dir); err != nil {
				return made, "", err
			}
		}
	}
	return made, dir, nil
}

// group is the Group of both versions: the leaf directories and the
// intermediate ones Create made.
type group struct {
	ops    dirOps
	leaves []string
	bases  []string // the parent cgroup of each leaf's hierarchy
	made   []string // what Create made, shallowest first; for undo
}

var _ Group = (*group)(nil)

func (g *group) Dirs() []string { return slices.Clone(g.leaves) }

func (g *group) Add(pid int) error {
	for _, d := range g.leaves {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("move process %d into cgroup: %w", pid, err)
		}
	}
	return nil
}

// busyRetry is how often Destroy retries a cgroup the kernel still
// reports busy (a process that has exited but is not yet released).
const busyRetry = 10 * time.Millisecond

func (g *group) Destroy(ctx context.Context) error {
	var errs []error
	for _, d := range g.leaves {
		if err := rmdirWait(ctx, g.ops, d); err != nil {
			errs = append(errs, err)
		}
	}
	// Then the intermediate cgroups up to the parent, deepest first.
	// Another app's group may still use one (ENOTEMPTY), or another
	// Destroy removed it (ENOENT); both are fine.
	for i, leaf := range g.leaves {
		for d := filepath.Dir(leaf); d != g.bases[i] && strings.HasPrefix(d, g.bases[i]+"/"); d = filepath.Dir(d) {
			err := g.ops.rmdir(d)
			if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EBUSY) {
				break
			}
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, err)
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy cgroup: %w", err)
	}
	return nil
}

// rmdirWait removes a cgroup directory, retrying while it is busy. A
// directory already gone is not an error.
func rmdirWait(ctx context.Context, ops dirOps, dir string) error {
	for {
		err := ops.rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return err
		}
		select {
		case <-ctx.Done():
			return errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("%w (processes left in it?): %w", err, ctx.Err()))
		case <-time.After(busyRetry):
		}
	}
}

// undo removes what a failed Create made, deepest first.
func (g *group) undo() {
	for i := len(g.made) - 1; i >= 0; i-- {
		_ = g.ops.rmdir(g.made[i])
	}
}
