package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memcg runs commands each in a fresh cgroup v1 memory group, below the
// bench's own, to read their peak memory. A nil *memcg runs them without
// one (only their maximum RSS is known).
type memcg struct {
	mount  string // private mount of the memory hierarchy
	parent string // the bench's own group in it
	n      int
}

// openMemcg mounts the cgroup v1 memory hierarchy at mnt (in the bench's
// mount namespace only) and finds the bench's group in it.
func openMemcg(mnt string) (*memcg, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	path := ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				path = parts[2]
			}
		}
	}
	if path == "" {
		return nil, errNoMemcg
	}
	if err := syscall.Mount("cgroup", mnt, "cgroup", 0, "memory"); err != nil {
		return nil, fmt.Errorf("mount the memory cgroup hierarchy: %w", err)
	}
	m := &memcg{mount: mnt, parent: filepath.Join(mnt, path)}
	if _, err := os.Stat(filepath.Join(m.parent, "memory.max_usage_in_bytes")); err != nil {
		m.close()
		return nil, err
	}
	// Groups a killed bench left behind.
	old, _ := filepath.Glob(filepath.Join(m.parent, "nscn-bench-*"))
	for _, g := range old {
		_ = syscall.Rmdir(g)
	}
	return m, nil
}

func (m *memcg) close() {
	if m == nil {
		return
	}
	if err := syscall.Unmount(m.mount, 0); err != nil {
		logf("unmount %s: %v", m.mount, err)
	}
}

// measure runs argv, which must succeed, and returns the peak memory of
// its group in bytes (0 without a memcg) and the largest maximum RSS of
// its processes in bytes, as GNU time reports it. The command runs under
// /usr/bin/time, which forks it from a small process: a child the bench
// (a large Go process) started directly would inherit the bench's RSS
// high-water mark through vfork and exec.
func (m *memcg) measure(ctx context.Context, argv []string) (peak, rss float64, err error) {
	rssFile := filepath.Join(os.TempDir(), fmt.Sprintf("nscn-bench-rss-%d", os.Getpid()))
	defer func() { _ = os.Remove(rssFile) }()
	timed := append([]string{"/usr/bin/time", "-f", "%M", "-o", rssFile}, argv...)
	var cmd *exec.Cmd
	group := ""
	if m != nil {
		m.n++
		group = filepath.Join(m.parent, fmt.Sprintf("nscn-bench-%d-%d", os.Getpid(), m.n))
		if err := os.Mkdir(group, 0o755); err != nil {
			return 0, 0, fmt.Errorf("create memory cgroup: %w", err)
		}
		defer func() {
			// The group empties once its last process is reaped; retry
			// briefly in case the kernel is still tearing one down.
			for i := 0; ; i++ {
				err := syscall.Rmdir(group)
				if err == nil || i == 50 {
					if err != nil {
						logf("remove %s: %v", group, err)
					}
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		// The shell joins the group, then becomes time.
		cmd = exec.CommandContext(ctx, "sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, group}, timed...)...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	} else {
		cmd = exec.CommandContext(ctx, timed[0], timed[1:]...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w: %s", shellJoin(argv), err, strings.TrimSpace(out.String()))
	}
	b, err := os.ReadFile(rssFile) //nolint:gosec // G304: the bench's own work files
	if err != nil {
		return 0, 0, fmt.Errorf("read GNU time output: %w", err)
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("GNU time output %q: %w", b, err)
	}
	rss = float64(kb) * 1024
	if m != nil {
		b, err := os.ReadFile(filepath.Join(group, "memory.max_usage_in_bytes"))
		if err != nil {
			return 0, 0, err
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("memory.max_usage_in_bytes: %w", err)
		}
		peak = float64(v)
	}
	return peak, rss, nil
}
