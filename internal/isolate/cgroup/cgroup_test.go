package cgroup

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
)

// fakeCgroupFS emulates the parts of cgroupfs the managers rely on, in a
// plain directory: a new cgroup comes with its control files (for v2,
// cgroup.controllers lists what the parent enabled), and rmdir removes a
// cgroup with its control files, but not one with children (ENOTEMPTY)
// or processes (EBUSY).
type fakeCgroupFS struct {
	t       *testing.T
	version int
}

func (f fakeCgroupFS) ops() dirOps { return dirOps{mkdir: f.mkdir, rmdir: f.rmdir} }

func (f fakeCgroupFS) write(p, v string) {
	f.t.Helper()
	if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeCgroupFS) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{"cgroup.procs": ""}
	if f.version == 1 {
		files["memory.limit_in_bytes"] = "9223372036854771712\n"
		files["cpu.cfs_quota_us"] = "-1\n"
		files["cpu.cfs_period_us"] = "100000\n"
		files["cpu.shares"] = "1024\n"
	} else {
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
		if err != nil {
			return err
		}
		files["cgroup.controllers"] = strings.ReplaceAll(string(parent), "+", "")
		files["cgroup.subtree_control"] = ""
		files["memory.max"] = "max\n"
		files["cpu.max"] = "max 100000\n"
		files["cpu.weight"] = "100\n"
	}
	for n, v := range files {
		f.write(filepath.Join(dir, n), v)
	}
	return nil
}

func (f fakeCgroupFS) rmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return &os.PathError{Op: "rmdir", Path: dir, Err: syscall.ENOENT}
	}
	for _, e := range ents {
		if e.IsDir() {
			return &os.PathError{Op: "rmdir", Path: dir, Err: syscall.ENOTEMPTY}
		}
	}
	if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(procs))) > 0 { //nolint:gosec // G304: a file the test made
		return &os.PathError{Op: "rmdir", Path: dir, Err: syscall.EBUSY}
	}
	return os.RemoveAll(dir)
}

// fakeV1 returns a V1 over a fake hierarchy per controller, with the
// parent cgroup "parent" in each, and those parent directories.
func fakeV1(t *testing.T) (*V1, []string) {
	fake := fakeCgroupFS{t: t, version: 1}
	root := t.TempDir()
	dirs := map[string]string{}
	var parents []string
	for _, c := range []string{"cpu", "memory"} {
		if err := os.Mkdir(filepath.Join(root, c), 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, c, "parent")
		if err := fake.mkdir(p); err != nil {
			t.Fatal(err)
		}
		dirs[c] = p
		parents = append(parents, p)
	}
	m := NewV1(dirs)
	m.ops = fake.ops()
	return m, parents
}

// fakeV2 returns a V2 over a fake unified hierarchy whose root enables
// cpu and memory for its children, with the parent cgroup "parent", in
// which nothing is enabled yet.
func fakeV2(t *testing.T) (*V2, []string) {
	fake := fakeCgroupFS{t: t, version: 2}
	root := t.TempDir()
	fake.write(filepath.Join(root, "cgroup.controllers"), "cpuset cpu io memory pids\n")
	fake.write(filepath.Join(root, "cgroup.subtree_control"), "cpu memory pids\n")
	fake.write(filepath.Join(root, "cgroup.procs"), "1\n")
	if err := fake.mkdir(filepath.Join(root, "parent")); err != nil {
		t.Fatal(err)
	}
	m := NewV2(root, "parent")
	m.ops = fake.ops()
	return m, []string{filepath.Join(root, "parent")}
}

var testLimits = Limits{MemoryMax: 64 << 20, CPUQuota: 50000, CPUShares: 512}

// TestManagerConformance runs the behavior every Manager shares against
// both versions.
func TestManagerConformance(t *testing.T) {
	impls := []struct {
		name string
		new  func(t *testing.T) (Manager, []string)
	}{
		{name: "v1", new: func(t *testing.T) (Manager, []string) { return fakeV1(t) }},
		{name: "v2", new: func(t *testing.T) (Manager, []string) { return fakeV2(t) }},
	}
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) { testManager(t, impl.new) })
	}
}

func testManager(t *testing.T, newManager func(t *testing.T) (Manager, []string)) {
	ctx := context.Background()
	exists := func(t *testing.T, p string) bool {
		t.Helper()
		_, err := os.Stat(p)
		return err == nil
	}

	t.Run("create add destroy", func(t *testing.T) {
		m, parents := newManager(t)
		g, err := m.Create(ctx, "nscn/pod/app", testLimits)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Dirs()) != len(parents) {
			t.Fatalf("Dirs() = %v, want one per hierarchy %v", g.Dirs(), parents)
		}
		for _, d := range g.Dirs() {
			if !exists(t, d) || !strings.HasSuffix(d, "/nscn/pod/app") {
				t.Fatalf("group dir %s missing", d)
			}
		}
		if err := g.Add(4242); err != nil {
			t.Fatal(err)
		}
		for _, d := range g.Dirs() {
			if b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs")); string(b) != "4242" { //nolint:gosec // G304: a file the test made
				t.Fatalf("%s/cgroup.procs = %q, want 4242", d, b)
			}
			// The app exits; the kernel empties the group.
			if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range parents {
			if !exists(t, p) {
				t.Fatalf("parent %s removed", p)
			}
			if exists(t, filepath.Join(p, "nscn")) {
				t.Fatalf("%s/nscn left behind", p)
			}
		}
	})

	t.Run("existing leaf", func(t *testing.T) {
		m, _ := newManager(t)
		g, err := m.Create(ctx, "nscn/pod/app", testLimits)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Create(ctx, "nscn/pod/app", testLimits); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("second Create: %v, want already exists", err)
		}
		for _, d := range g.Dirs() {
			if !exists(t, d) {
				t.Fatalf("failed Create removed the first group's %s", d)
			}
		}
	})

	t.Run("shared intermediates", func(t *testing.T) {
		m, parents := newManager(t)
		a, err := m.Create(ctx, "nscn/pod/a", testLimits)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Create(ctx, "nscn/pod/b", Limits{MemoryMax: 1 << 20, CPUShares: 100})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		for _, d := range b.Dirs() {
			if !exists(t, d) {
				t.Fatalf("destroying a removed b's %s", d)
			}
		}
		if err := b.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range parents {
			if exists(t, filepath.Join(p, "nscn")) {
				t.Fatalf("%s/nscn left behind", p)
			}
		}
	})

	t.Run("busy group", func(t *testing.T) {
		m, _ := newManager(t)
		g, err := m.Create(ctx, "nscn/pod/app", testLimits)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Add(1); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if err := g.Destroy(short); !errors.Is(err, errdefs.ErrFailedPrecondition) || !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("Destroy with a process left: %v, want failed precondition and EBUSY", err)
		}
	})

	t.Run("zero limits make nothing", func(t *testing.T) {
		m, parents := newManager(t)
		g, err := m.Create(ctx, "nscn/pod/app", Limits{})
		if err != nil || len(g.Dirs()) != 0 {
			t.Fatalf("Create(zero) = %v, %v", g.Dirs(), err)
		}
		if err := g.Add(1); err != nil {
			t.Fatal(err)
		}
		if err := g.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range parents {
			if exists(t, filepath.Join(p, "nscn")) {
				t.Fatalf("zero limits created %s/nscn", p)
			}
		}
	})

	t.Run("refused input", func(t *testing.T) {
		m, _ := newManager(t)
		for _, tc := range []struct {
			name   string
			limits Limits
		}{
			{"", testLimits},
			{"/abs", testLimits},
			{"../up", testLimits},
			{"a/../b", testLimits},
			{"a//b", testLimits},
			{"..", testLimits},
			{"ok", Limits{CPUShares: 1}},
			{"ok", Limits{MemoryMax: -1}},
			{"ok", Limits{CPUQuota: 10}},
			{"ok", Limits{CPUQuota: 5000, CPUPeriod: 10}},
		} {
			if _, err := m.Create(ctx, tc.name, tc.limits); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Create(%q, %+v) = %v, want invalid argument", tc.name, tc.limits, err)
			}
		}
	})
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV1Files(t *testing.T) {
	m, parents := fakeV1(t)
	g, err := m.Create(context.Background(), "nscn/pod/app", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	cpu, mem := filepath.Join(parents[0], "nscn/pod/app"), filepath.Join(parents[1], "nscn/pod/app")
	want := map[string]string{
		filepath.Join(mem, "memory.limit_in_bytes"): "67108864",
		filepath.Join(cpu, "cpu.cfs_period_us"):     "100000",
		filepath.Join(cpu, "cpu.cfs_quota_us"):      "50000",
		filepath.Join(cpu, "cpu.shares"):            "512",
	}
	for p, v := range want {
		if got := readTrim(t, p); got != v {
			t.Errorf("%s = %q, want %q", p, got, v)
		}
	}
	if !slices.Equal(g.Dirs(), []string{cpu, mem}) {
		t.Fatalf("Dirs() = %v", g.Dirs())
	}

	// A memory limit alone touches only the memory hierarchy.
	g2, err := m.Create(context.Background(), "nscn/pod/mem-only", Limits{MemoryMax: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g2.Dirs(), []string{filepath.Join(parents[1], "nscn/pod/mem-only")}) {
		t.Fatalf("Dirs() = %v, want the memory hierarchy only", g2.Dirs())
	}
}

func TestV1Update(t *testing.T) {
	m, parents := fakeV1(t)
	if _, err := m.Create(context.Background(), "nscn/pod/app", Limits{MemoryMax: 1 << 20, CPUShares: 1024}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(context.Background(), "nscn/pod/mem-only", Limits{MemoryMax: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	cpu, mem := filepath.Join(parents[0], "nscn/pod/app"), filepath.Join(parents[1], "nscn/pod/app")
	if err := m.Update("nscn/pod/app", Limits{MemoryMax: 2 << 20, CPUQuota: 20000, CPUShares: 256}); err != nil {
		t.Fatal(err)
	}
	for p, v := range map[string]string{
		filepath.Join(mem, "memory.limit_in_bytes"): "2097152",
		filepath.Join(cpu, "cpu.cfs_period_us"):     "100000",
		filepath.Join(cpu, "cpu.cfs_quota_us"):      "20000",
		filepath.Join(cpu, "cpu.shares"):            "256",
	} {
		if got := readTrim(t, p); got != v {
			t.Errorf("%s = %q, want %q", p, got, v)
		}
	}
	tests := []struct {
		name  string
		group string
		l     Limits
		err   error
	}{
		{name: "no cpu cgroup of its own", group: "nscn/pod/mem-only", l: Limits{CPUShares: 512}, err: errdefs.ErrFailedPrecondition},
		{name: "no such group", group: "nscn/pod/nope", l: Limits{MemoryMax: 1 << 20}, err: errdefs.ErrFailedPrecondition},
		{name: "bad limits", group: "nscn/pod/app", l: Limits{CPUShares: 1}, err: errdefs.ErrInvalidArgument},
		{name: "bad name", group: "../x", l: Limits{MemoryMax: 1 << 20}, err: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.Update(tt.group, tt.l); !errors.Is(err, tt.err) {
				t.Fatalf("Update(%q, %+v) = %v, want %v", tt.group, tt.l, err, tt.err)
			}
		})
	}
	// The failed updates wrote nothing.
	if got := readTrim(t, filepath.Join(parents[1], "nscn/pod/mem-only", "memory.limit_in_bytes")); got != "1048576" {
		t.Errorf("mem-only's limit is %q after refused updates", got)
	}
}

func TestV1MissingController(t *testing.T) {
	m := NewV1(map[string]string{"cpu": t.TempDir()})
	if _, err := m.Create(context.Background(), "x", Limits{MemoryMax: 1 << 20}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Create without memory hierarchy: %v, want unavailable", err)
	}
}

func TestV2Files(t *testing.T) {
	m, parents := fakeV2(t)
	_, err := m.Create(context.Background(), "nscn/pod/app", testLimits)
	if err != nil {
		t.Fatal(err)
	}
	p := parents[0]
	leaf := filepath.Join(p, "nscn/pod/app")
	want := map[string]string{
		// Enabled in the parent and every cgroup down to the leaf's.
		filepath.Join(p, "cgroup.subtree_control"):          "+cpu +memory",
		filepath.Join(p, "nscn/cgroup.subtree_control"):     "+cpu +memory",
		filepath.Join(p, "nscn/pod/cgroup.subtree_control"): "+cpu +memory",
		filepath.Join(leaf, "cgroup.subtree_control"):       "",
		filepath.Join(leaf, "memory.max"):                   "67108864",
		filepath.Join(leaf, "cpu.max"):                      "50000 100000",
		filepath.Join(leaf, "cpu.weight"):                   "20",
	}
	for f, v := range want {
		if got := readTrim(t, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
}

func TestV2ControllerUnavailable(t *testing.T) {
	m, parents := fakeV2(t)
	if err := os.WriteFile(filepath.Join(parents[0], "cgroup.controllers"), []byte("cpu pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := m.Create(context.Background(), "nscn/pod/app", testLimits)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Create: %v, want unavailable", err)
	}
	if _, err := os.Stat(filepath.Join(parents[0], "nscn")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Create left %s/nscn", parents[0])
	}
	// cpu alone is fine.
	if _, err := m.Create(context.Background(), "nscn/pod/app", Limits{CPUShares: 2048}); err != nil {
		t.Fatal(err)
	}
}

func TestSharesToWeight(t *testing.T) {
	tests := []struct {
		name   string
		shares uint64
		weight uint64
	}{
		{name: "minimum", shares: 2, weight: 1},
		{name: "maximum", shares: 262144, weight: 10000},
		{name: "v1 default", shares: 1024, weight: 39},
		{name: "below range", shares: 0, weight: 1},
		{name: "above range", shares: 1 << 30, weight: 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SharesToWeight(tt.shares); got != tt.weight {
				t.Fatalf("SharesToWeight(%d) = %d, want %d", tt.shares, got, tt.weight)
			}
		})
	}
}

const (
	hybridMountInfo = `22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridSelf = `9:name=systemd:/
8:pids:/
4:memory:/process_api/61f8
2:cpu,cpuacct:/
0::/
`
	unifiedMountInfo = `22 1 0:21 / /sys rw - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
`
	unifiedSelf = "0::/system.slice/nscn.service\n"
	// In a cgroup namespace (nspawn), the mount root and the process's
	// path are both "/".
	nsMountInfo = `30 22 0:27 /machine.slice/pod /sys/fs/cgroup rw - cgroup2 cgroup2 rw
`
	nsSelf = "0::/\n"
)

func parse(t *testing.T, mountinfo, self string) ([]mountplan.MountInfo, []Membership) {
	t.Helper()
	mounts, err := mountplan.ParseMountInfo(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ParseProcCgroup(strings.NewReader(self))
	if err != nil {
		t.Fatal(err)
	}
	return mounts, ms
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		self      string
		cfg       Config
		version   int
		dirs      map[string]string // v1
		v2        [2]string         // mount, parent
		errClass  error
	}{
		{
			name: "hybrid uses v1, own cgroup as parent", mountinfo: hybridMountInfo, self: hybridSelf, version: 1,
			dirs: map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory/process_api/61f8"},
		},
		{
			name: "hybrid with explicit parent", mountinfo: hybridMountInfo, self: hybridSelf, cfg: Config{Parent: "/nscn.slice"}, version: 1,
			dirs: map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct/nscn.slice", "memory": "/sys/fs/cgroup/memory/nscn.slice"},
		},
		{
			name: "unified", mountinfo: unifiedMountInfo, self: unifiedSelf, version: 2,
			v2: [2]string{"/sys/fs/cgroup", "system.slice/nscn.service"},
		},
		{
			name: "unified, root parent", mountinfo: unifiedMountInfo, self: unifiedSelf, cfg: Config{Parent: "/"}, version: 2,
			v2: [2]string{"/sys/fs/cgroup", "."},
		},
		{
			name: "cgroup namespace", mountinfo: nsMountInfo, self: "0::/machine.slice/pod/app\n", version: 2,
			v2: [2]string{"/sys/fs/cgroup", "app"},
		},
		{
			name: "parent outside the mounted subtree", mountinfo: nsMountInfo, self: nsSelf, cfg: Config{Parent: "/elsewhere"},
			errClass: errdefs.ErrFailedPrecondition,
		},
		{
			name: "no cgroups", mountinfo: "22 1 0:21 / /sys rw - sysfs sysfs rw\n", self: "0::/\n",
			errClass: errdefs.ErrUnavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, self := parse(t, tt.mountinfo, tt.self)
			m, err := Detect(mounts, self, tt.cfg)
			if tt.errClass != nil {
				if !errors.Is(err, tt.errClass) {
					t.Fatalf("Detect: %v, want %v", err, tt.errClass)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Version() != tt.version {
				t.Fatalf("version %d, want %d", m.Version(), tt.version)
			}
			switch m := m.(type) {
			case *V1:
				if len(m.dirs) != len(tt.dirs) {
					t.Fatalf("dirs = %v, want %v", m.dirs, tt.dirs)
				}
				for c, d := range tt.dirs {
					if m.dirs[c] != d {
						t.Fatalf("dirs = %v, want %v", m.dirs, tt.dirs)
					}
				}
			case *V2:
				if m.mount != tt.v2[0] || m.parent != tt.v2[1] {
					t.Fatalf("v2 mount %q parent %q, want %q", m.mount, m.parent, tt.v2)
				}
			}
		})
	}
}

func TestParseProcCgroupRefuses(t *testing.T) {
	for _, in := range []string{"garbage", "x:memory:/", "1:memory:relative", "-1::/", "1:memory"} {
		if _, err := ParseProcCgroup(strings.NewReader(in + "\n")); err == nil {
			t.Errorf("ParseProcCgroup(%q) accepted", in)
		}
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add(hybridSelf)
	f.Add(unifiedSelf)
	f.Fuzz(func(t *testing.T, in string) {
		ms, err := ParseProcCgroup(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.ID < 0 || !strings.HasPrefix(m.Path, "/") {
				t.Fatalf("accepted %+v", m)
			}
		}
	})
}

func TestCurrent(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		m, parents := fakeV2(t)
		if _, err := m.Create(context.Background(), "nscn/pod/app", testLimits); err != nil {
			t.Fatal(err)
		}
		root := filepath.Dir(parents[0])
		mounts, self := parse(t, "30 22 0:27 / "+root+" rw - cgroup2 cgroup2 rw\n", "0::/parent/nscn/pod/app\n")
		got, err := current(mounts, self, root)
		if err != nil {
			t.Fatal(err)
		}
		// cpu.weight 20 converts back to 500 shares, not 512.
		want := Limits{MemoryMax: 64 << 20, CPUQuota: 50000, CPUPeriod: 100000, CPUShares: 500}
		if got != want {
			t.Fatalf("current = %+v, want %+v", got, want)
		}
	})
	t.Run("v1", func(t *testing.T) {
		m, parents := fakeV1(t)
		if _, err := m.Create(context.Background(), "nscn/pod/app", Limits{MemoryMax: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		cpuMount, memMount := filepath.Dir(parents[0]), filepath.Dir(parents[1])
		mounts, self := parse(t,
			"31 30 0:28 / "+cpuMount+" rw - cgroup cgroup rw,cpu,cpuacct\n34 30 0:31 / "+memMount+" rw - cgroup cgroup rw,memory\n",
			"4:memory:/parent/nscn/pod/app\n2:cpu,cpuacct:/parent\n")
		got, err := current(mounts, self, "/nonexistent")
		if err != nil {
			t.Fatal(err)
		}
		want := Limits{MemoryMax: 1 << 30, CPUShares: 1024}
		if got != want {
			t.Fatalf("current = %+v, want %+v", got, want)
		}
	})
}

func TestV2Delegate(t *testing.T) {
	m, parents := fakeV2(t)
	p := parents[0]
	// The parent offers io too, which Delegate leaves alone.
	if err := os.WriteFile(filepath.Join(p, "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := m.Delegate(context.Background(), "nscn/pod")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(p, "nscn/pod"); dir != want {
		t.Errorf("Delegate = %s, want %s", dir, want)
	}
	want := map[string]string{
		filepath.Join(p, "cgroup.subtree_control"):      "+cpu +memory +pids",
		filepath.Join(p, "nscn/cgroup.subtree_control"): "+cpu +memory +pids",
		// Available in the pod's cgroup, not enabled for its children:
		// the container manager must first leave it.
		filepath.Join(dir, "cgroup.controllers"):     "cpu memory pids",
		filepath.Join(dir, "cgroup.subtree_control"): "",
		filepath.Join(dir, "cgroup.procs"):           "",
	}
	for f, v := range want {
		if got := readTrim(t, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	// A second pod of the same name is refused and leaves the first.
	if _, err := m.Delegate(context.Background(), "nscn/pod"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Delegate: %v, want already exists", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("second Delegate removed the first: %v", err)
	}
}

func TestV2DelegateUndo(t *testing.T) {
	m, parents := fakeV2(t)
	p := parents[0]
	// The last step fails: what Delegate made is removed again.
	fake := fakeCgroupFS{t: t, version: 2}
	m.ops = dirOps{
		mkdir: func(dir string) error {
			if filepath.Base(dir) == "pod" {
				return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.EACCES}
			}
			return fake.mkdir(dir)
		},
		rmdir: fake.rmdir,
	}
	if _, err := m.Delegate(context.Background(), "nscn/pod"); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("Delegate: %v, want EACCES", err)
	}
	if _, err := os.Stat(filepath.Join(p, "nscn")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Delegate left nscn: %v", err)
	}
	if _, err := m.Delegate(context.Background(), "../x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Delegate(../x): %v, want invalid argument", err)
	}
}
