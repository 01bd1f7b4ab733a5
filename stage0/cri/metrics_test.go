package cri

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/isolate/cgroup"
)

func TestReadCgroupMetrics(t *testing.T) {
	own := "nscn/0b1c/app"
	tests := []struct {
		name    string
		root    string
		ms      []cgroup.Membership
		want    cgroupMetrics
		wantDev []blkioDev
	}{
		{
			name: "v1 own cpu, cpuacct, memory and blkio, the pod's pids",
			root: "testdata/metrics/v1",
			ms: []cgroup.Membership{
				{ID: 1, Controllers: []string{"cpu"}, Path: "/pod/" + own},
				{ID: 2, Controllers: []string{"cpuacct"}, Path: "/pod/" + own},
				{ID: 4, Controllers: []string{"memory"}, Path: "/pod/" + own},
				{ID: 5, Controllers: []string{"blkio"}, Path: "/pod/" + own},
				{ID: 8, Controllers: []string{"pids"}, Path: "/pod"},
			},
			want: cgroupMetrics{
				cpu: map[string]uint64{"usage_ns": 1234000000, "user_ticks": 80, "system_ticks": 43},
				cfs: map[string]uint64{"nr_periods": 40, "nr_throttled": 7, "throttled_ns": 3500000000},
				mem: map[string]uint64{
					"usage": 10178560, "working_set": 10178560 - 8396800, "rss": 929792, "cache": 8400896,
					"mapped_file": 4096, "swap": 0, "max_usage": 10858496, "failcnt": 2, "kernel": 749568,
					"oom_kill": 1, "pgfault": 475, "pgmajfault": 1, "total_pgfault": 480, "total_pgmajfault": 2,
				},
				swapLimit: 9223372036854771712,
				pidsMax:   4096,
				procs:     []int{4927, 4935, 4937},
				ownCPU:    true, ownCFS: true, ownMemory: true,
			},
			wantDev: []blkioDev{{major: 8, minor: 0, readBytes: 4096, writeBytes: 8192, reads: 1, writes: 2}},
		},
		{
			name: "v1 without cgroups of its own: only the pids limit",
			root: "testdata/metrics/v1",
			ms: []cgroup.Membership{
				{ID: 4, Controllers: []string{"memory"}, Path: "/pod"},
				{ID: 8, Controllers: []string{"pids"}, Path: "/pod"},
			},
			want: cgroupMetrics{pidsMax: 4096},
		},
		{
			name: "unified",
			root: "testdata/metrics/unified",
			ms:   []cgroup.Membership{{ID: 0, Path: "/pod/" + own}},
			want: cgroupMetrics{
				cpu: map[string]uint64{"usage_ns": 2000000000, "user_ticks": 150, "system_ticks": 50},
				cfs: map[string]uint64{"nr_periods": 10, "nr_throttled": 3, "throttled_ns": 1000000000},
				mem: map[string]uint64{
					"usage": 5000000, "working_set": 2000000, "rss": 1000000, "cache": 4000000,
					"mapped_file": 8192, "kernel": 12288, "failcnt": 5, "oom_kill": 1,
					"pgfault": 90, "pgmajfault": 4, "total_pgfault": 90, "total_pgmajfault": 4,
					"max_usage": 6000000, "swap": 0,
				},
				procs:  []int{77},
				ownCPU: true, ownCFS: true, ownMemory: true,
			},
			wantDev: []blkioDev{{major: 8, minor: 0, readBytes: 100, writeBytes: 200, reads: 3, writes: 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readCgroupMetrics(tt.root, tt.ms, own)
			if !slices.Equal(got.blkio, tt.wantDev) {
				t.Errorf("blkio = %+v, want %+v", got.blkio, tt.wantDev)
			}
			got.blkio = nil
			if !equalCgroupMetrics(got, tt.want) {
				t.Errorf("readCgroupMetrics =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func equalCgroupMetrics(a, b cgroupMetrics) bool {
	eq := func(x, y map[string]uint64) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return eq(a.cpu, b.cpu) && eq(a.cfs, b.cfs) && eq(a.mem, b.mem) && a.swapLimit == b.swapLimit &&
		a.pidsMax == b.pidsMax && slices.Equal(a.procs, b.procs) &&
		a.ownCPU == b.ownCPU && a.ownCFS == b.ownCFS && a.ownMemory == b.ownMemory
}

func TestReadProcMetrics(t *testing.T) {
	tests := []struct {
		name string
		pids []int
		want procMetrics
	}{
		{
			name: "main and child",
			pids: []int{10, 11},
			// 10: utime 30 stime 20 cutime 5 cstime 5, 1 thread, 25 pages;
			// 11 (a command with spaces and parentheses): 7+3, 4 threads,
			// 10 pages; its children's times are not counted.
			want: procMetrics{processes: 2, threads: 5, fds: 5, sockets: 3, userTicks: 42, systemTicks: 28, cpuNanos: 70 * (1e9 / clockTicks)},
		},
		{
			name: "a process gone meanwhile is skipped",
			pids: []int{11, 99},
			want: procMetrics{processes: 1, threads: 4, fds: 3, sockets: 2, userTicks: 8, systemTicks: 4, cpuNanos: 12 * (1e9 / clockTicks)},
		},
	}
	page := uint64(os.Getpagesize()) //nolint:gosec // G115: a page size is positive
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readProcMetrics("testdata/metrics/proc", tt.pids)
			wantRSS := map[int]uint64{10: 25, 11: 10}
			var rss uint64
			for _, p := range tt.pids {
				rss += wantRSS[p] * page
			}
			if got.rss != rss {
				t.Errorf("rss = %d, want %d", got.rss, rss)
			}
			nofile := got.nofile
			got.rss, got.nofile = 0, nil
			if got != tt.want {
				t.Errorf("readProcMetrics = %+v, want %+v", got, tt.want)
			}
			if tt.pids[0] == 10 && (nofile == nil || *nofile != 1024) {
				t.Errorf("nofile = %v, want 1024", nofile)
			}
			// ContainerStats' lean read: the same CPU, memory, processes
			// and threads, no descriptors, sockets or limit.
			lean := readProcUsage("testdata/metrics/proc", tt.pids)
			want := tt.want
			want.fds, want.sockets = 0, 0
			if lean.rss != rss || lean.nofile != nil {
				t.Errorf("readProcUsage: rss %d nofile %v, want %d and none", lean.rss, lean.nofile, rss)
			}
			lean.rss = 0
			if lean != want {
				t.Errorf("readProcUsage = %+v, want %+v", lean, want)
			}
		})
	}
}

func TestParseNetDev(t *testing.T) {
	const hdr = "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
	tests := []struct {
		name    string
		in      string
		want    []netDev
		wantErr bool
	}{
		{
			name: "loopback and eth0",
			in: hdr + "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n" +
				"  eth0:      90       1    3    4    0     0          0         0      266       3    5    6    0     0       0          0\n",
			want: []netDev{
				{name: "lo", rxBytes: 100, rxPackets: 2, txBytes: 100, txPackets: 2},
				{name: "eth0", rxBytes: 90, rxPackets: 1, rxErrs: 3, rxDrop: 4, txBytes: 266, txPackets: 3, txErrs: 5, txDrop: 6},
			},
		},
		{name: "headers only", in: hdr},
		{name: "too few counters", in: hdr + "eth0: 1 2 3\n", wantErr: true},
		{name: "not a number", in: hdr + "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", wantErr: true},
		{name: "no name", in: hdr + ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetDev(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseNetDev: %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("parseNetDev = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSoftLimit(t *testing.T) {
	const limits = "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max open files            1024                 4096                 files     \n"
	tests := []struct {
		name string
		key  string
		want int64 // -1: nil
	}{
		{"number", "Max open files", 1024},
		{"unlimited", "Max cpu time", -1},
		{"missing", "Max processes", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := softLimit(limits, tt.key)
			if (got == nil) != (tt.want < 0) || (got != nil && int64(*got) != tt.want) { //nolint:gosec // G115: test values are small
				t.Errorf("softLimit(%q) = %v, want %d", tt.key, got, tt.want)
			}
		})
	}
}

func TestListMetricDescriptors(t *testing.T) {
	resp, err := (&Server{}).ListMetricDescriptors(context.Background(), &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range resp.GetDescriptors() {
		if seen[d.GetName()] {
			t.Errorf("%s described twice", d.GetName())
		}
		seen[d.GetName()] = true
		if d.GetHelp() == "" || !slices.Equal(d.GetLabelKeys()[:len(containerLabels)], containerLabels) {
			t.Errorf("%s: help %q, label keys %q", d.GetName(), d.GetHelp(), d.GetLabelKeys())
		}
	}
	// Every metric the emitter reports is described, with as many label
	// keys as it has values.
	e := emitter{now: time.Unix(0, 0), labels: make([]string, len(containerLabels))}
	e.spec(cgroup.Limits{}, cgroupMetrics{})
	e.cgroup(readCgroupMetrics("testdata/metrics/v1", []cgroup.Membership{
		{Controllers: []string{"cpu"}, Path: "/pod/nscn/0b1c/app"},
		{Controllers: []string{"cpuacct"}, Path: "/pod/nscn/0b1c/app"},
		{Controllers: []string{"memory"}, Path: "/pod/nscn/0b1c/app"},
		{Controllers: []string{"blkio"}, Path: "/pod/nscn/0b1c/app"},
	}, "nscn/0b1c/app"))
	one := uint64(1)
	e.procs(procMetrics{nofile: &one}, cgroupMetrics{})
	e.network([]netDev{{name: "eth0"}})
	keys := map[string]int{}
	for _, d := range resp.GetDescriptors() {
		keys[d.GetName()] = len(d.GetLabelKeys())
	}
	for _, m := range e.out {
		if n, ok := keys[m.GetName()]; !ok || n != len(m.GetLabelValues()) {
			t.Errorf("%s: %d label values, described %v with %d keys", m.GetName(), len(m.GetLabelValues()), ok, n)
		}
	}
}

func FuzzParseNetDev(f *testing.F) {
	f.Add("h\nh\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
	f.Add("h\nh\nlo:\n")
	f.Fuzz(func(t *testing.T, s string) {
		ifs, err := parseNetDev(strings.NewReader(s))
		if err != nil && ifs != nil {
			t.Errorf("interfaces %v with error %v", ifs, err)
		}
	})
}

func FuzzParseBlkio(f *testing.F) {
	f.Add("8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n")
	f.Fuzz(func(t *testing.T, v1, v2 string) {
		for _, l := range parseBlkio(strings.NewReader(v1)) {
			if l.op == "" {
				t.Errorf("a line without an operation: %+v", l)
			}
		}
		_ = parseIOStat(strings.NewReader(v2))
	})
}

func TestAppNSProcess(t *testing.T) {
	tests := []struct {
		name string
		pid  int
		want int
	}{
		// 20 (namespace 1) has children 21 (namespace 1) and, from
		// another thread, 22 (namespace 2).
		{"a child in a namespace of its own", 20, 22},
		{"no child in another namespace", 30, 30},
		{"gone", 99, 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appNSProcess("testdata/metrics/nsproc", tt.pid); got != tt.want {
				t.Errorf("appNSProcess(%d) = %d, want %d", tt.pid, got, tt.want)
			}
		})
	}
}

func TestContainerProcesses(t *testing.T) {
	tests := []struct {
		name  string
		pid   int
		procs []int
		want  []int
	}{
		// nsproc: 20 (namespace 1) has children 21 (namespace 1) and
		// 22 (namespace 2, the app's); 30 has none; 40 has 41, which has
		// 42 (and, a loop no kernel writes, 40).
		{name: "the app's own namespace", pid: 20, want: []int{22}},
		{name: "the app's own namespace, of its own cgroup", pid: 20, procs: []int{20, 22}, want: []int{22}},
		{name: "the app's own namespace, none in its cgroup", pid: 20, procs: []int{20}, want: []int{}},
		{name: "no namespace of its own: its cgroup's, the main one first", pid: 30, procs: []int{31, 30}, want: []int{30, 31}},
		{name: "neither: the main one and its descendants", pid: 40, want: []int{40, 41, 42}},
		{name: "neither, no children", pid: 30, want: []int{30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := containerProcesses("testdata/metrics/nsproc", tt.pid, tt.procs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("containerProcesses(%d, %v) = %v, want %v", tt.pid, tt.procs, got, tt.want)
			}
		})
	}
}
