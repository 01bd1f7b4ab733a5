package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/mountplan"
)

// Without systemd on the host, no scope is made for the pod: run starts
// systemd-nspawn in a cgroup of the pod's own in the hierarchies systemd
// uses (the named "systemd" v1 hierarchy and the unified one), from a
// thread that joined the v1 one and into the v2 one (podCgroups).
// systemd-nspawn keeps it (--keep-unit) and the pod's systemd builds its
// tree below it, so pods never share cgroups. gc removes it.
//
// On a unified (cgroup v2 only) host the pod's cgroup must be delegated:
// the pod's systemd sets the apps' limits on cgroups of its own below it.
// run enables the cpu, memory and pids controllers from the root down to
// nscn, creates nscn/UUID and starts systemd-nspawn in it directly
// (CLONE_INTO_CGROUP), without moving itself there. systemd-nspawn
// (--keep-unit) moves itself to nscn/UUID/supervisor and the container to
// nscn/UUID/payload, and then enables the controllers in nscn/UUID for
// the payload, which the kernel allows only once nscn/UUID holds no
// process: had run moved itself there, it would stay, and the pod would
// get no controllers.

// podCgroupRel is the pod's cgroup below each hierarchy's root.
func podCgroupRel(uuid string) string { return filepath.Join("nscn", uuid) }

// hostCgroups are the cgroup hierarchies run places the pod in.
type hostCgroups struct {
	// hierarchies are the mount points of the hierarchies systemd uses:
	// the v2 one, and the v1 "name=systemd" one.
	hierarchies []string
	// unified: the only hierarchy is the v2 one, at cgroup.DefaultRoot.
	unified bool
}

// detectHostCgroups reads the mount table for hostCgroups.
func detectHostCgroups() (hostCgroups, error) {
	hs, err := systemdHierarchies()
	if err != nil {
		return hostCgroups{}, err
	}
	return hostCgroups{hierarchies: hs, unified: slices.Equal(hs, []string{cgroup.DefaultRoot})}, nil
}

// systemdHierarchies returns the mount points of the cgroup hierarchies
// systemd uses: the v2 one, and the v1 "name=systemd" one.
func systemdHierarchies() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer func() { _ = f.Close() }()
	infos, err := mountplan.ParseMountInfo(f)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, in := range infos {
		switch {
		case in.FSType == "cgroup2",
			in.FSType == "cgroup" && slices.Contains(strings.Split(in.SuperOptions, ","), "name=systemd"):
			if in.Root == "/" && !slices.Contains(out, in.MountPoint) {
				out = append(out, in.MountPoint)
			}
		}
	}
	return out, nil
}

// podCgroups is how systemd-nspawn is started in the pod's cgroups
// (joinPodCgroups).
type podCgroups struct {
	// cloneDir is the pod's cgroup in the v2 hierarchy, where
	// systemd-nspawn is started directly (CLONE_INTO_CGROUP); empty on
	// a host without one.
	cloneDir string
	// tasks are the "tasks" files of the pod's cgroups in the v1
	// hierarchies: join moves the calling thread there, and
	// systemd-nspawn, forked from it, is born there.
	tasks []string
}

// join moves the calling thread, which must be locked to its goroutine
// and must start systemd-nspawn, into the pod's v1 cgroups, or nil when
// there are none. It moves that thread alone: moving a whole process
// (cgroup.procs) takes the kernel's lock on every thread group of the
// host for writing, which waits for an RCU grace period (milliseconds,
// and tens of them on a loaded machine) for each hierarchy; a thread
// writing "0" to "tasks" takes no such lock. run's other threads stay
// where run was started.
func (c podCgroups) join() func() error {
	if len(c.tasks) == 0 {
		return nil
	}
	return func() error {
		for _, t := range c.tasks {
			if err := os.WriteFile(t, []byte("0\n"), 0); err != nil {
				return fmt.Errorf("join pod cgroup %s: %w", filepath.Dir(t), err)
			}
		}
		return nil
	}
}

// joinPodCgroups creates the pod's cgroups and returns how
// systemd-nspawn is started in them: on a unified host, in the
// delegated pod cgroup; on a v1 (legacy or hybrid) host, in the pod's
// cgroup of the v2 hierarchy, if there is one, and from a thread that
// joined those of the v1 hierarchies.
func joinPodCgroups(ctx context.Context, uuid string, hc hostCgroups) (podCgroups, error) {
	if hc.unified {
		dir, err := cgroup.NewV2(hc.hierarchies[0], ".").Delegate(ctx, podCgroupRel(uuid))
		if err != nil {
			return podCgroups{}, fmt.Errorf("create pod cgroup: %w", err)
		}
		return podCgroups{cloneDir: dir}, nil
	}
	var pc podCgroups
	for _, h := range hc.hierarchies {
		dir := filepath.Join(h, podCgroupRel(uuid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return podCgroups{}, fmt.Errorf("create pod cgroup: %w", err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(h, &st); err != nil {
			return podCgroups{}, &os.PathError{Op: "statfs", Path: h, Err: err}
		}
		if st.Type == unix.CGROUP2_SUPER_MAGIC {
			pc.cloneDir = dir
		} else {
			pc.tasks = append(pc.tasks, filepath.Join(dir, "tasks"))
		}
	}
	return pc, nil
}

// removePodCgroups kills what is left in the pod's cgroups and removes
// them, deepest first. Missing cgroups are not an error.
func removePodCgroups(uuid string) error {
	hs, err := systemdHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		dir := filepath.Join(h, podCgroupRel(uuid))
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for range 50 {
			if killCgroupProcs(dirs) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		slices.Reverse(dirs)
		for _, d := range dirs {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &os.PathError{Op: "rmdir", Path: d, Err: err})
			}
		}
	}
	return errors.Join(errs...)
}

// killCgroupProcs sends SIGKILL to every process of dirs and returns how
// many it found.
func killCgroupProcs(dirs []string) int {
	n := 0
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")) //nolint:gosec // G304: a cgroup control file
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				n++
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	return n
}
