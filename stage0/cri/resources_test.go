package cri

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/stage0/prepare"
)

func TestApplyResources(t *testing.T) {
	own, err := ownOOMScoreAdj()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    *runtimeapi.LinuxContainerResources
		want cgroup.Limits
		oom  *int
		err  error
	}{
		{name: "none"},
		{name: "memory", r: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 15 << 20, MemorySwapLimitInBytes: 15 << 20}, want: cgroup.Limits{MemoryMax: 15 << 20}},
		{name: "cpu quota", r: &runtimeapi.LinuxContainerResources{CpuQuota: 50000, CpuPeriod: 100000}, want: cgroup.Limits{CPUQuota: 50000, CPUPeriod: cgroup.DefaultCPUPeriod}},
		{name: "cpu shares", r: &runtimeapi.LinuxContainerResources{CpuShares: 512}, want: cgroup.Limits{CPUShares: 512}},
		{name: "cpu shares below the kernel's", r: &runtimeapi.LinuxContainerResources{CpuShares: 1}, want: cgroup.Limits{CPUShares: 2}},
		{name: "oom_score_adj", r: &runtimeapi.LinuxContainerResources{OomScoreAdj: 1000}, oom: ptr(1000)},
		{name: "oom_score_adj raised to the server's", r: &runtimeapi.LinuxContainerResources{OomScoreAdj: -1000}, oom: ptr(max(own, -1000))},
		{name: "cpuset", r: &runtimeapi.LinuxContainerResources{CpusetCpus: "0"}, err: errdefs.ErrNotImplemented},
		{name: "swap", r: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20, MemorySwapLimitInBytes: 2 << 20}, err: errdefs.ErrNotImplemented},
		{name: "unified", r: &runtimeapi.LinuxContainerResources{Unified: map[string]string{"memory.high": "1"}}, err: errdefs.ErrNotImplemented},
		{name: "negative memory", r: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: -1}, err: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var isos types.Isolators
			err := applyResources(tt.r, &isos)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := policyOf(t, prepareApp(isos))
			if p.Cgroup != tt.want {
				t.Errorf("limits %+v, want %+v", p.Cgroup, tt.want)
			}
			if (p.OOMScoreAdj == nil) != (tt.oom == nil) || tt.oom != nil && *p.OOMScoreAdj != *tt.oom {
				t.Errorf("oom_score_adj %v, want %v", p.OOMScoreAdj, tt.oom)
			}
		})
	}
}

func prepareApp(isos types.Isolators) prepare.App { return prepare.App{Isolators: isos} }

func ptr[T any](v T) *T { return &v }

// writeFiles makes files under dir, path → content.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUsageOf(t *testing.T) {
	const own = "nscn/u/a"
	tests := []struct {
		name  string
		files map[string]string
		ms    []cgroup.Membership
		want  cgroupUsage
		oom   uint64
	}{
		{
			name: "v1, the app's own, cpu and cpuacct apart",
			files: map[string]string{
				"cpuacct/pod/nscn/u/a/cpuacct.usage":        "123456789\n",
				"memory/pod/nscn/u/a/memory.usage_in_bytes": "10000\n",
				"memory/pod/nscn/u/a/memory.stat":           "cache 10\ntotal_rss 4000\ntotal_inactive_file 3000\n",
				"memory/pod/nscn/u/c1/memory.oom_control":   "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
			},
			ms: []cgroup.Membership{
				{ID: 2, Controllers: []string{"cpuacct"}, Path: "/pod/nscn/u/a"},
				{ID: 4, Controllers: []string{"memory"}, Path: "/pod/nscn/u/a"},
				{ID: 0, Path: "/"},
			},
			want: cgroupUsage{cpuNanos: 123456789, memUsage: 10000, workingSet: 7000, rss: 4000, ownCPU: true, ownMemory: true},
			oom:  2,
		},
		{
			name: "v1, cpu,cpuacct joined, the pod's: not read",
			files: map[string]string{
				"cpu,cpuacct/p/cpuacct.usage":    "5\n",
				"memory/p/memory.usage_in_bytes": "100\n",
				"memory/p/memory.stat":           "total_inactive_file 200\n",
			},
			ms: []cgroup.Membership{{ID: 2, Controllers: []string{"cpu", "cpuacct"}, Path: "/p"}, {ID: 4, Controllers: []string{"memory"}, Path: "/p"}},
		},
		{
			name: "v1, only the memory cgroup is the app's",
			files: map[string]string{
				"memory/p/nscn/u/a/memory.usage_in_bytes": "100\n",
				"memory/p/nscn/u/a/memory.stat":           "total_inactive_file 200\n",
				"memory/p/nscn/u/c1/memory.oom_control":   "oom_kill 1\n",
			},
			ms:   []cgroup.Membership{{ID: 2, Controllers: []string{"cpuacct"}, Path: "/"}, {ID: 4, Controllers: []string{"memory"}, Path: "/p/nscn/u/a"}},
			want: cgroupUsage{memUsage: 100, ownMemory: true},
			oom:  1,
		},
		{
			name: "v2",
			files: map[string]string{
				"p/nscn/u/a/cpu.stat":       "usage_usec 7\nuser_usec 5\n",
				"p/nscn/u/a/memory.current": "9000\n",
				"p/nscn/u/a/memory.stat":    "anon 100\ninactive_file 1000\n",
			},
			ms:   []cgroup.Membership{{ID: 0, Path: "/p/nscn/u/a"}},
			want: cgroupUsage{cpuNanos: 7000, memUsage: 9000, workingSet: 8000, rss: 100, ownCPU: true, ownMemory: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			u, err := usageOf(root, tt.ms, own)
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.want {
				t.Errorf("usage %+v, want %+v", u, tt.want)
			}
			// The OOM count of a sibling app, c1, below the pod's.
			var pod []cgroup.Membership
			for _, m := range tt.ms {
				m.Path = strings.TrimSuffix(m.Path, "/"+own)
				pod = append(pod, m)
			}
			if got := oomKillsIn(root, pod, "nscn/u/c1"); got != tt.oom {
				t.Errorf("oom kills %d, want %d", got, tt.oom)
			}
		})
	}
}

func TestProcsUsage(t *testing.T) {
	proc := t.TempDir()
	// 10 is the app's supervisor in the pod's PID namespace, with 13
	// (the pod's systemd, another app); 11, its child, is the init of
	// the app's own namespace, with 12, the app, whose command holds a
	// parenthesis and spaces.
	stat := func(comm string, utime, stime, cutime, cstime, rss int) string {
		f := []string{"1", "(" + comm + ")", "S"}
		for i := 4; i <= 24; i++ {
			v := "0"
			switch i {
			case 14:
				v = strconv.Itoa(utime)
			case 15:
				v = strconv.Itoa(stime)
			case 16:
				v = strconv.Itoa(cutime)
			case 17:
				v = strconv.Itoa(cstime)
			case 24:
				v = strconv.Itoa(rss)
			}
			f = append(f, v)
		}
		return strings.Join(f, " ") + "\n"
	}
	writeFiles(t, proc, map[string]string{
		"10/stat":              stat("nscn-app", 7000, 7000, 0, 0, 900),
		"10/task/10/children":  "11 ",
		"11/stat":              stat("app-init", 100, 50, 20, 10, 3),
		"11/task/11/children":  "12 ",
		"12/stat":              stat("a) b", 1, 1, 500, 500, 2),
		"12/task/12/schedstat": "5000 30 2\n",
		"12/task/14/schedstat": "7000 0 1\n",
		"13/stat":              stat("systemd", 1000, 1000, 0, 0, 100),
		"13/task/13/children":  "",
	})
	for pid, ns := range map[string]string{"10": "pid:[1]", "11": "pid:[2]", "12": "pid:[2]", "13": "pid:[1]"} {
		if err := os.MkdirAll(filepath.Join(proc, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(ns, filepath.Join(proc, pid, "ns", "pid")); err != nil {
			t.Fatal(err)
		}
	}
	u, err := procsUsage(proc, 10)
	if err != nil {
		t.Fatal(err)
	}
	// 11 with what it reaped, 12 without; neither the supervisor nor
	// the rest of the pod's namespace. 12's threads' run time is in
	// nanoseconds (schedstat); 11 has none, and counts its ticks.
	wantCPU := uint64(100+50+20+10)*(1e9/clockTicks) + 5000 + 7000
	wantMem := uint64(3+2) * uint64(os.Getpagesize()) //nolint:gosec // G115: a page size is positive
	if u.cpuNanos != wantCPU || u.rss != wantMem || u.workingSet != wantMem || u.memUsage != wantMem {
		t.Errorf("usage %+v, want cpu %d, memory %d", u, wantCPU, wantMem)
	}
}

func TestLimitsOf(t *testing.T) {
	l, err := limitsOf(&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuShares: 512, OomScoreAdj: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if want := (cgroup.Limits{MemoryMax: 96 << 20, CPUShares: 512}); l != want {
		t.Errorf("limits %+v, want %+v", l, want)
	}
	if l, err := limitsOf(nil); err != nil || !l.IsZero() {
		t.Errorf("no resources: %+v, %v", l, err)
	}
	if _, err := limitsOf(&runtimeapi.LinuxContainerResources{CpusetCpus: "1"}); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("a cpuset: %v, want not implemented", err)
	}
}
