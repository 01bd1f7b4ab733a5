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

// Without systemd on the host, no scope is made for the pod: run moves
// itself, before it starts systemd-nspawn, into a cgroup of the pod's own
// in the hierarchies systemd uses (the named "systemd" v1 hierarchy and the
// unified one). systemd-nspawn keeps it (--keep-unit) and the pod's
// systemd builds its tree below it, so pods never share cgroups. gc
// removes it.
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

// joinPodCgroups creates the pod's cgroups. On a v1 (legacy or hybrid)
// host it moves run into them and returns "". On a unified host it
// returns the delegated pod cgroup, where run starts systemd-nspawn.
func joinPodCgroups(ctx context.Context, uuid string, hc hostCgroups) (string, error) {
	if hc.unified {
		dir, err := cgroup.NewV2(hc.hierarchies[0], ".").Delegate(ctx, podCgroupRel(uuid))
		if err != nil {
			return "", fmt.Errorf("create pod cgroup: %w", err)
		}
		return dir, nil
	}
	for _, h := range hc.hierarchies {
		dir := filepath.Join(h, podCgroupRel(uuid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create pod cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0\n"), 0); err != nil {
			return "", fmt.Errorf("join pod cgroup %s: %w", dir, err)
		}
	}
	return "", nil
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
