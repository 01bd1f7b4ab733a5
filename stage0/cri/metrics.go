package cri

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/stage0/apps"
)

// The CRI metrics endpoints (ListMetricDescriptors,
// ListPodSandboxMetrics) give the kubelet's CRI stats provider the
// cAdvisor metrics it would otherwise read from cAdvisor itself: the same
// names, the same help and the same label keys, so the kubelet's
// /metrics/cadvisor looks the same whichever provider fills it.
//
// Every container metric carries the label keys kubelet's cAdvisor
// provider gives a container (containerLabels), in this order, and some
// carry one or more of their own after them (cpu, interface, device …).
// A CRI metric's value is a uint64: the *_seconds_total ones are whole
// seconds, truncated.

// containerLabels are the label keys of every container metric, as
// kubelet's cAdvisor provider (containerPrometheusLabelsFunc) names
// them: the container's name in its pod, the runtime's ID of it, its
// image, the runtime's name of it (the app name in the nscn pod), and
// its pod's namespace and name.
var containerLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// metricDesc describes one metric: what ListMetricDescriptors reports,
// and how ListPodSandboxMetrics types its values.
type metricDesc struct {
	name  string
	help  string
	extra []string // label keys after containerLabels
	kind  runtimeapi.MetricType
}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

// metricDescs are the metrics nscn reports, with cAdvisor's help texts.
// Left out, because nothing on a cgroup v1 host without pressure stall
// information or huge page limits gives them a real value: the
// container_pressure_* metrics (PSI is cgroup v2's), the
// container_hugetlb_* ones (nscn refuses huge page limits) and
// container_spec_memory_reservation_limit_bytes (nscn sets no soft
// limit). See Documentation/cri.md, "Metrics".
var metricDescs = []metricDesc{
	{"container_blkio_device_usage_total", "Blkio device bytes usage", []string{"device", "major", "minor", "operation"}, counter},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", nil, counter},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", nil, counter},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", nil, counter},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", nil, counter},
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", []string{"cpu"}, counter},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", nil, counter},
	{"container_file_descriptors", "Number of open file descriptors for the container.", nil, gauge},
	{"container_fs_inodes_free", "Number of available Inodes", []string{"device"}, gauge},
	{"container_fs_inodes_total", "Number of Inodes", []string{"device"}, gauge},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", []string{"device"}, gauge},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", []string{"device"}, counter},
	{"container_fs_reads_total", "Cumulative count of reads completed", []string{"device"}, counter},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", []string{"device"}, gauge},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", []string{"device"}, counter},
	{"container_fs_writes_total", "Cumulative count of writes completed", []string{"device"}, counter},
	{"container_last_seen", "Last time a container was seen by the exporter", nil, gauge},
	{"container_memory_cache", "Number of bytes of page cache memory.", nil, gauge},
	{"container_memory_failcnt", "Number of memory usage hits limits", nil, counter},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", []string{"failure_type", "scope"}, counter},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", nil, gauge},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", nil, gauge},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", nil, gauge},
	{"container_memory_rss", "Size of RSS in bytes.", nil, gauge},
	{"container_memory_swap", "Container swap usage in bytes.", nil, gauge},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", nil, gauge},
	{"container_memory_working_set_bytes", "Current working set in bytes.", nil, gauge},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", []string{"interface"}, counter},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", []string{"interface"}, counter},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", []string{"interface"}, counter},
	{"container_network_receive_packets_total", "Cumulative count of packets received", []string{"interface"}, counter},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", []string{"interface"}, counter},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", []string{"interface"}, counter},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", []string{"interface"}, counter},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", []string{"interface"}, counter},
	{"container_oom_events_total", "Count of out of memory events observed for the container", nil, counter},
	{"container_processes", "Number of processes running inside the container.", nil, gauge},
	{"container_sockets", "Number of open sockets for the container.", nil, gauge},
	{"container_spec_cpu_period", "CPU period of the container.", nil, gauge},
	{"container_spec_cpu_quota", "CPU quota of the container.", nil, gauge},
	{"container_spec_cpu_shares", "CPU share of the container.", nil, gauge},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", nil, gauge},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", nil, gauge},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", nil, gauge},
	{"container_threads", "Number of threads running inside the container", nil, gauge},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", nil, gauge},
	{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", []string{"ulimit"}, gauge},
}

// ListMetricDescriptors describes every metric ListPodSandboxMetrics
// may report.
func (s *Server) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{}
	for _, d := range metricDescs {
		resp.Descriptors = append(resp.Descriptors, &runtimeapi.MetricDescriptor{
			Name:      d.name,
			Help:      d.help,
			LabelKeys: append(slices.Clone(containerLabels), d.extra...),
		})
	}
	return resp, nil
}

// ListPodSandboxMetrics reports the metrics of every sandbox and its
// containers. A sandbox's own metrics are its network's (cAdvisor has
// them on the pod's infra container, labelled container="POD"); the
// rest are each container's.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	all, err := s.sandboxes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtimeapi.ListPodSandboxMetricsResponse{}
	for _, sb := range all {
		resp.PodMetrics = append(resp.PodMetrics, s.sandboxMetrics(ctx, sb))
	}
	return resp, nil
}

func (s *Server) sandboxMetrics(ctx context.Context, sb *sandbox) *runtimeapi.PodSandboxMetrics {
	now := time.Now()
	sts := apps.Statuses(sb.pod, sb.pm)
	pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.id}
	netPID := 0
	for _, c := range s.containersOf(sb) {
		var st *apps.Status
		for i := range sts {
			if sts[i].Name == c.app {
				st = &sts[i]
			}
		}
		if st != nil && st.State == apps.Running && st.PID > 0 && netPID == 0 {
			netPID = st.PID
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{
			ContainerId: c.meta.ID,
			Metrics:     s.containerMetrics(ctx, c, st, now),
		})
	}
	if netPID == 0 {
		if pid, err := sb.pod.PID(ctx); err == nil && pid > 0 {
			netPID = pid
		}
	}
	if netPID > 0 {
		ifs, err := netDevOf(netPID)
		if err != nil {
			s.log.Debug("sandbox network metrics", "sandbox", sb.id, "error", err)
		}
		e := emitter{now: now, labels: []string{"POD", sb.id, "", sb.id, sb.meta.Namespace, sb.meta.Name}}
		e.network(ifs)
		pm.Metrics = e.out
	}
	return pm
}

// netDevOf reads the interfaces of the network namespace of pid.
func netDevOf(pid int) ([]netDev, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", "dev"))
	if err != nil {
		return nil, err
	}
	return parseNetDev(bytes.NewReader(b))
}

// containerMetrics reads one container's metrics: its spec, start time
// and writable layer always, the rest while it runs (st.PID is its main
// process: with stage1-nspawn, the app's supervisor).
func (s *Server) containerMetrics(ctx context.Context, c *container, st *apps.Status, now time.Time) []*runtimeapi.Metric {
	e := emitter{now: now, labels: []string{c.meta.Name, c.meta.ID, c.meta.Image, c.app, c.sb.meta.Namespace, c.sb.meta.Name}}
	e.add("container_last_seen", uint64(now.Unix())) //nolint:gosec // G115: after 1970
	if st != nil && !st.Started.IsZero() {
		e.add("container_start_time_seconds", uint64(max(st.Started.Unix(), 0)))
	}
	var lim cgroup.Limits
	for _, ra := range c.sb.pm.Apps {
		if ra.Name.String() == c.app && ra.App != nil {
			if p, _, err := isolate.PolicyFor(ra.App, isolate.Options{DisableSeccomp: true, DisableCapabilities: true, DisablePaths: true}); err == nil {
				lim = p.Cgroup
			}
		}
	}
	running := st != nil && st.State == apps.Running && st.PID > 0
	var cg cgroupMetrics
	if running {
		if ms, err := cgroupsOf(st.PID); err == nil {
			cg = readCgroupMetrics(cgroupRoot, ms, appCgroupName(c))
		}
	}
	e.spec(lim, cg)
	e.filesystem(ctx, c)
	if !running {
		return e.out
	}
	pids, err := containerProcesses("/proc", st.PID, cg.procs)
	if err != nil {
		s.log.Debug("container metrics", "container", c.meta.ID, "error", err)
		return e.out
	}
	pr := readProcMetrics("/proc", pids)
	if !cg.ownMemory {
		// No memory cgroup of its own: what its processes hold resident,
		// as ContainerStats reports it.
		cg.mem = map[string]uint64{"rss": pr.rss, "usage": pr.rss, "working_set": pr.rss}
		cg.ownMemory = true
	}
	if !cg.ownCPU {
		cg.cpu = map[string]uint64{"usage_ns": pr.cpuNanos, "user_ticks": pr.userTicks, "system_ticks": pr.systemTicks}
		cg.ownCPU = true
	}
	e.cgroup(cg)
	e.procs(pr, cg)
	return e.out
}

// emitter builds the metrics of one container, all with its labels.
type emitter struct {
	now    time.Time
	labels []string
	out    []*runtimeapi.Metric
}

func (e *emitter) add(name string, v uint64, extra ...string) {
	kind := gauge
	for _, d := range metricDescs {
		if d.name == name {
			kind = d.kind
		}
	}
	e.out = append(e.out, &runtimeapi.Metric{
		Name:        name,
		Timestamp:   e.now.UnixNano(),
		MetricType:  kind,
		LabelValues: append(slices.Clone(e.labels), extra...),
		Value:       &runtimeapi.UInt64Value{Value: v},
	})
}

// spec reports the limits the container was created with, from its
// app's isolators (the defaults the kernel applies when unset: 1024
// shares, a 100 ms period, no quota, 0 for no memory limit), and the
// swap limit its memory cgroup has (memory.memsw.limit_in_bytes; 0 when
// the kernel does not account swap, as cAdvisor reports it).
func (e *emitter) spec(l cgroup.Limits, cg cgroupMetrics) {
	period := l.CPUPeriod
	if period == 0 {
		period = cgroup.DefaultCPUPeriod
	}
	shares := l.CPUShares
	if shares == 0 {
		shares = 1024
	}
	e.add("container_spec_cpu_period", uint64(period))
	e.add("container_spec_cpu_quota", uint64(max(l.CPUQuota, 0)))
	e.add("container_spec_cpu_shares", shares)
	e.add("container_spec_memory_limit_bytes", uint64(max(l.MemoryMax, 0)))
	e.add("container_spec_memory_swap_limit_bytes", cg.swapLimit)
}

// cgroup reports what the container's cgroups count.
func (e *emitter) cgroup(cg cgroupMetrics) {
	e.add("container_cpu_usage_seconds_total", cg.cpu["usage_ns"]/uint64(time.Second), "total")
	e.add("container_cpu_user_seconds_total", cg.cpu["user_ticks"]/clockTicks)
	e.add("container_cpu_system_seconds_total", cg.cpu["system_ticks"]/clockTicks)
	if cg.ownCFS {
		e.add("container_cpu_cfs_periods_total", cg.cfs["nr_periods"])
		e.add("container_cpu_cfs_throttled_periods_total", cg.cfs["nr_throttled"])
		e.add("container_cpu_cfs_throttled_seconds_total", cg.cfs["throttled_ns"]/uint64(time.Second))
	}
	m := cg.mem
	e.add("container_memory_usage_bytes", m["usage"])
	e.add("container_memory_working_set_bytes", m["working_set"])
	e.add("container_memory_rss", m["rss"])
	for _, k := range []struct{ key, name string }{
		{"cache", "container_memory_cache"},
		{"mapped_file", "container_memory_mapped_file"},
		{"swap", "container_memory_swap"},
		{"max_usage", "container_memory_max_usage_bytes"},
		{"failcnt", "container_memory_failcnt"},
		{"kernel", "container_memory_kernel_usage"},
		{"oom_kill", "container_oom_events_total"},
	} {
		if v, ok := m[k.key]; ok {
			e.add(k.name, v)
		}
	}
	for _, f := range []struct{ key, typ, scope string }{
		{"pgfault", "pgfault", "container"},
		{"pgmajfault", "pgmajfault", "container"},
		{"total_pgfault", "pgfault", "hierarchy"},
		{"total_pgmajfault", "pgmajfault", "hierarchy"},
	} {
		if v, ok := m[f.key]; ok {
			e.add("container_memory_failures_total", v, f.typ, f.scope)
		}
	}
	for _, d := range cg.blkio {
		dev := fmt.Sprintf("%d:%d", d.major, d.minor)
		maj, mnr := strconv.Itoa(int(d.major)), strconv.Itoa(int(d.minor)) //nolint:gosec // G115: device numbers are small
		e.add("container_blkio_device_usage_total", d.readBytes, dev, maj, mnr, "Read")
		e.add("container_blkio_device_usage_total", d.writeBytes, dev, maj, mnr, "Write")
		e.add("container_fs_reads_bytes_total", d.readBytes, dev)
		e.add("container_fs_writes_bytes_total", d.writeBytes, dev)
		e.add("container_fs_reads_total", d.reads, dev)
		e.add("container_fs_writes_total", d.writes, dev)
	}
}

// procs reports what the container's processes hold.
func (e *emitter) procs(p procMetrics, cg cgroupMetrics) {
	e.add("container_processes", p.processes)
	e.add("container_threads", p.threads)
	e.add("container_threads_max", cg.pidsMax)
	e.add("container_file_descriptors", p.fds)
	e.add("container_sockets", p.sockets)
	if p.nofile != nil {
		e.add("container_ulimits_soft", *p.nofile, "max_open_files")
	}
}

// network reports the interfaces of the pod's network namespace but its
// loopback, which cAdvisor leaves out too.
func (e *emitter) network(ifs []netDev) {
	for _, d := range ifs {
		if d.name == "lo" {
			continue
		}
		e.add("container_network_receive_bytes_total", d.rxBytes, d.name)
		e.add("container_network_receive_packets_total", d.rxPackets, d.name)
		e.add("container_network_receive_errors_total", d.rxErrs, d.name)
		e.add("container_network_receive_packets_dropped_total", d.rxDrop, d.name)
		e.add("container_network_transmit_bytes_total", d.txBytes, d.name)
		e.add("container_network_transmit_packets_total", d.txPackets, d.name)
		e.add("container_network_transmit_errors_total", d.txErrs, d.name)
		e.add("container_network_transmit_packets_dropped_total", d.txDrop, d.name)
	}
}

// filesystem reports the filesystem that holds the container's writable
// layer (the app's overlay upper directory, host-side: what fills it up
// is what the container writes), labelled with the source of the host's
// mount of it, and the bytes the layer holds.
func (e *emitter) filesystem(ctx context.Context, c *container) {
	upper, _ := mountplan.AppOverlayDirs(c.sb.pod.Path, c.app)
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if unix.Statfs(upper, &sfs) != nil || unix.Lstat(upper, &st) != nil {
		return // no layer of its own (yet, or by its flavor)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if mis, err := mountplan.ParseMountInfo(bytes.NewReader(b)); err == nil {
			for _, mi := range mis {
				if uint32(mi.Major) == unix.Major(st.Dev) && uint32(mi.Minor) == unix.Minor(st.Dev) { //nolint:gosec // G115: device numbers from the kernel
					dev = mi.Source
					break
				}
			}
		}
	}
	bsize := uint64(sfs.Bsize) //nolint:gosec // G115: a block size is positive
	e.add("container_fs_limit_bytes", sfs.Blocks*bsize, dev)
	e.add("container_fs_inodes_total", sfs.Files, dev)
	e.add("container_fs_inodes_free", sfs.Ffree, dev)
	if wl, err := usage(ctx, upper); err == nil {
		e.add("container_fs_usage_bytes", wl.GetUsedBytes().GetValue(), dev)
	}
}

// cgroupMetrics is what the container's own cgroups (those whose path
// ends in nscn/UUID/APP) count: v1 controllers' files or the unified
// hierarchy's, under the keys emitter.cgroup reads.
type cgroupMetrics struct {
	cpu       map[string]uint64 // usage_ns, user_ticks, system_ticks
	cfs       map[string]uint64 // nr_periods, nr_throttled, throttled_ns
	mem       map[string]uint64 // usage, working_set, rss, cache, …
	blkio     []blkioDev
	swapLimit uint64
	pidsMax   uint64 // 0: no limit
	// procs are the processes of the container's own cgroup (with
	// the stage1's supervisor of the app, which is in the pod's PID
	// namespace), nil when it has none.
	procs []int
	// ownCPU, ownCFS and ownMemory: the container has cgroups of its
	// own for these.
	ownCPU, ownCFS, ownMemory bool
}

// blkioDev is one block device's I/O.
type blkioDev struct {
	major, minor                         uint64
	readBytes, writeBytes, reads, writes uint64
}

// readCgroupMetrics reads the cgroups ms names below root: those whose
// path ends in own, and the pids controller's whichever it is (the
// nearest limit on the container's threads). Files that are missing
// are left out.
func readCgroupMetrics(root string, ms []cgroup.Membership, own string) cgroupMetrics {
	var cg cgroupMetrics
	isOwn := func(p string) bool { return strings.HasSuffix(p, "/"+own) }
	for _, m := range ms {
		if len(m.Controllers) == 0 {
			continue
		}
		dir := filepath.Join(root, strings.Join(m.Controllers, ","), m.Path)
		if slices.Contains(m.Controllers, "pids") {
			cg.pidsMax = readMax(filepath.Join(dir, "pids.max"))
		}
		if !isOwn(m.Path) {
			continue
		}
		if cg.procs == nil {
			cg.procs = readProcs(filepath.Join(dir, "cgroup.procs"))
		}
		if slices.Contains(m.Controllers, "cpuacct") {
			if n, err := readUint(filepath.Join(dir, "cpuacct.usage")); err == nil {
				st, _ := readKeyed(filepath.Join(dir, "cpuacct.stat"))
				cg.cpu = map[string]uint64{"usage_ns": n, "user_ticks": st["user"], "system_ticks": st["system"]}
				cg.ownCPU = true
			}
		}
		if slices.Contains(m.Controllers, "cpu") {
			if st, err := readKeyed(filepath.Join(dir, "cpu.stat")); err == nil {
				cg.cfs = map[string]uint64{"nr_periods": st["nr_periods"], "nr_throttled": st["nr_throttled"], "throttled_ns": st["throttled_time"]}
				cg.ownCFS = true
			}
		}
		if slices.Contains(m.Controllers, "memory") {
			if mem, ok := readMemoryV1(dir); ok {
				cg.mem, cg.ownMemory = mem, true
				cg.swapLimit, _ = readUint(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
			}
		}
		if slices.Contains(m.Controllers, "blkio") {
			cg.blkio = readBlkioV1(dir)
		}
	}
	p, ok := cgroup.UnifiedPath(ms)
	if !ok || !isOwn(p) {
		return cg
	}
	dir := filepath.Join(root, p)
	if cg.procs == nil {
		cg.procs = readProcs(filepath.Join(dir, "cgroup.procs"))
	}
	if st, err := readKeyed(filepath.Join(dir, "cpu.stat")); err == nil && !cg.ownCPU {
		cg.cpu = map[string]uint64{"usage_ns": st["usage_usec"] * 1000, "user_ticks": st["user_usec"] * clockTicks / 1e6, "system_ticks": st["system_usec"] * clockTicks / 1e6}
		cg.cfs = map[string]uint64{"nr_periods": st["nr_periods"], "nr_throttled": st["nr_throttled"], "throttled_ns": st["throttled_usec"] * 1000}
		cg.ownCPU, cg.ownCFS = true, true
	}
	if cur, err := readUint(filepath.Join(dir, "memory.current")); err == nil && !cg.ownMemory {
		st, _ := readKeyed(filepath.Join(dir, "memory.stat"))
		ev, _ := readKeyed(filepath.Join(dir, "memory.events"))
		cg.mem = map[string]uint64{
			"usage": cur, "working_set": cur - min(cur, st["inactive_file"]),
			"rss": st["anon"], "cache": st["file"], "mapped_file": st["file_mapped"], "kernel": st["kernel"],
			"failcnt": ev["max"], "oom_kill": ev["oom_kill"],
			"pgfault": st["pgfault"], "pgmajfault": st["pgmajfault"],
			"total_pgfault": st["pgfault"], "total_pgmajfault": st["pgmajfault"],
		}
		if n, err := readUint(filepath.Join(dir, "memory.peak")); err == nil {
			cg.mem["max_usage"] = n
		}
		if n, err := readUint(filepath.Join(dir, "memory.swap.current")); err == nil {
			cg.mem["swap"] = n
		}
		cg.swapLimit = readMax(filepath.Join(dir, "memory.swap.max"))
		cg.ownMemory = true
	}
	if b, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil { //nolint:gosec // G304: a file of a cgroup directory under /sys/fs/cgroup
		cg.blkio = parseIOStat(bytes.NewReader(b))
	}
	return cg
}

// readMemoryV1 reads a v1 memory cgroup: false when it has no usage.
func readMemoryV1(dir string) (map[string]uint64, bool) {
	usage, err := readUint(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return nil, false
	}
	st, _ := readKeyed(filepath.Join(dir, "memory.stat"))
	m := map[string]uint64{
		"usage": usage, "working_set": usage - min(usage, st["total_inactive_file"]),
		"rss": st["total_rss"], "cache": st["total_cache"], "mapped_file": st["total_mapped_file"],
		"swap": st["total_swap"],
	}
	for k, v := range st {
		if k == "pgfault" || k == "pgmajfault" || k == "total_pgfault" || k == "total_pgmajfault" {
			m[k] = v
		}
	}
	for k, f := range map[string]string{"max_usage": "memory.max_usage_in_bytes", "failcnt": "memory.failcnt", "kernel": "memory.kmem.usage_in_bytes"} {
		if n, err := readUint(filepath.Join(dir, f)); err == nil {
			m[k] = n
		}
	}
	if oc, err := readKeyed(filepath.Join(dir, "memory.oom_control")); err == nil {
		m["oom_kill"] = oc["oom_kill"]
	}
	return m, true
}

// readProcs reads a cgroup.procs file: the PIDs of its processes, nil
// when it cannot be read.
func readProcs(p string) []int {
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file of a cgroup directory under /sys/fs/cgroup
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// readMax reads a limit file that says "max" for none: 0 then, and when
// it cannot be read.
func readMax(p string) uint64 {
	n, _ := readUint(p)
	return n
}

// readBlkioV1 reads the bytes and operations of each device of a v1
// blkio cgroup (the CFQ-independent throttle counters, which count
// every device).
func readBlkioV1(dir string) []blkioDev {
	byDev := map[[2]uint64]*blkioDev{}
	var order [][2]uint64
	for _, f := range []struct {
		file        string
		read, write func(*blkioDev) *uint64
	}{
		{"blkio.throttle.io_service_bytes", func(d *blkioDev) *uint64 { return &d.readBytes }, func(d *blkioDev) *uint64 { return &d.writeBytes }},
		{"blkio.throttle.io_serviced", func(d *blkioDev) *uint64 { return &d.reads }, func(d *blkioDev) *uint64 { return &d.writes }},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.file)) //nolint:gosec // G304: a file of a cgroup directory under /sys/fs/cgroup
		if err != nil {
			continue
		}
		for _, l := range parseBlkio(bytes.NewReader(b)) {
			k := [2]uint64{l.major, l.minor}
			d := byDev[k]
			if d == nil {
				d = &blkioDev{major: l.major, minor: l.minor}
				byDev[k] = d
				order = append(order, k)
			}
			switch l.op {
			case "Read":
				*f.read(d) = l.value
			case "Write":
				*f.write(d) = l.value
			}
		}
	}
	out := make([]blkioDev, 0, len(order))
	for _, k := range order {
		out = append(out, *byDev[k])
	}
	return out
}

// blkioLine is one "MAJ:MIN Op value" line of a v1 blkio file.
type blkioLine struct {
	major, minor, value uint64
	op                  string
}

// parseBlkio reads a v1 blkio statistics file; its "Total" lines and any
// line that is not "MAJ:MIN Op value" are skipped.
func parseBlkio(r io.Reader) []blkioLine {
	var out []blkioLine
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		maj, mnr, ok := parseDevNum(f[0])
		v, err := strconv.ParseUint(f[2], 10, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, blkioLine{major: maj, minor: mnr, op: f[1], value: v})
	}
	return out
}

// parseIOStat reads a v2 io.stat file: "MAJ:MIN rbytes=N wbytes=N
// rios=N wios=N …" lines; malformed lines and fields are skipped.
func parseIOStat(r io.Reader) []blkioDev {
	var out []blkioDev
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		maj, mnr, ok := parseDevNum(f[0])
		if !ok {
			continue
		}
		d := blkioDev{major: maj, minor: mnr}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				d.readBytes = n
			case "wbytes":
				d.writeBytes = n
			case "rios":
				d.reads = n
			case "wios":
				d.writes = n
			}
		}
		out = append(out, d)
	}
	return out
}

func parseDevNum(s string) (maj, mnr uint64, ok bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 32)
	mnr, err2 := strconv.ParseUint(b, 10, 32)
	return maj, mnr, err1 == nil && err2 == nil
}

// netDev is one interface's counters in /proc/net/dev.
type netDev struct {
	name                               string
	rxBytes, rxPackets, rxErrs, rxDrop uint64
	txBytes, txPackets, txErrs, txDrop uint64
}

// parseNetDev reads /proc/net/dev (of a process's network namespace):
// two header lines, then "name: 16 counters", receive's eight and
// transmit's eight. A line that is not is an error.
func parseNetDev(r io.Reader) ([]netDev, error) {
	var out []netDev
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if n <= 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(rest)
		if !ok || len(f) < 16 || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("/proc/net/dev line %d: not an interface's counters", n)
		}
		v := make([]uint64, 16)
		for i := range v {
			x, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/net/dev line %d: %w", n, err)
			}
			v[i] = x
		}
		out = append(out, netDev{
			name:    strings.TrimSpace(name),
			rxBytes: v[0], rxPackets: v[1], rxErrs: v[2], rxDrop: v[3],
			txBytes: v[8], txPackets: v[9], txErrs: v[10], txDrop: v[11],
		})
	}
	return out, sc.Err()
}

// procMetrics is what a container's processes hold.
type procMetrics struct {
	processes, threads, fds, sockets uint64
	cpuNanos, userTicks, systemTicks uint64
	rss                              uint64
	// nofile is the soft RLIMIT_NOFILE of the first process (the main
	// one), nil when unread; "unlimited" is reported as-is by the kernel
	// only for limits nofile never has.
	nofile *uint64
}

// nsProcesses lists the processes in the PID namespace of pid (the
// app's own: stage1-nspawn gives each app one), pid first.
func nsProcesses(proc string, pid int) ([]int, error) {
	ns, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return nil, fmt.Errorf("pid namespace of %d: %w", pid, err)
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	out := []int{pid}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		if l, err := os.Readlink(filepath.Join(proc, e.Name(), "ns", "pid")); err == nil && l == ns {
			out = append(out, n)
		}
	}
	return out, nil
}

// containerProcesses lists the processes of the container whose app's
// main process (its stage1 supervisor, the unit's main process) is pid,
// and whose own cgroup holds procs (nil when it has none):
//   - the processes of the app's own PID namespace (its init, what that
//     runs, execs included), which a child of pid is in with
//     stage1-nspawn, less any not in procs;
//   - else (the app in the host's PID namespace, started by the pod's
//     spawner, not by pid) the processes of its own cgroup, the
//     supervisor with them;
//   - else pid and its descendants, never every process of a namespace
//     the pod's stage1 or the host shares.
func containerProcesses(proc string, pid int, procs []int) ([]int, error) {
	if c := appNSProcess(proc, pid); c != pid {
		pids, err := nsProcesses(proc, c)
		if err != nil || procs == nil {
			return pids, err
		}
		return slices.DeleteFunc(pids, func(p int) bool { return !slices.Contains(procs, p) }), nil
	}
	if procs != nil {
		out := slices.Clone(procs)
		if i := slices.Index(out, pid); i > 0 {
			out[0], out[i] = out[i], out[0] // the main one first: readProcMetrics counts what it reaped
		}
		return out, nil
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		for _, c := range childrenOf(proc, out[i]) {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// childrenOf reads the children of every thread of pid.
func childrenOf(proc string, pid int) []int {
	dir := filepath.Join(proc, strconv.Itoa(pid), "task")
	tasks, _ := os.ReadDir(dir)
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "children")) //nolint:gosec // G304: a /proc file of a numbered process
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// appNSProcess is a child of pid in a PID namespace of its own (the
// app's, below the supervisor pid), pid itself when it has none.
func appNSProcess(proc string, pid int) int {
	ns, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return pid
	}
	for _, c := range childrenOf(proc, pid) {
		if l, err := os.Readlink(filepath.Join(proc, strconv.Itoa(c), "ns", "pid")); err == nil && l != ns {
			return c
		}
	}
	return pid
}

// readProcMetrics reads the processes pids under proc (a /proc tree):
// their number, threads (stat field 20), open descriptors and sockets
// among them, CPU time (with what pids[0] reaped) and resident memory.
// A process gone meanwhile is skipped.
func readProcMetrics(proc string, pids []int) procMetrics {
	return readProcFiles(proc, pids, true)
}

// readProcUsage is readProcMetrics without the descriptors, sockets and
// open-files limit, which ContainerStats does not report: its CPU time and
// memory come from each process's stat and its threads' schedstat alone.
// A descriptor is a readlink, so an app with many open (a server's
// connections) made every stats call of a kubelet pay for each.
func readProcUsage(proc string, pids []int) procMetrics {
	return readProcFiles(proc, pids, false)
}

// readProcFiles reads pids under proc; the descriptors and limits only when
// files is true.
func readProcFiles(proc string, pids []int, files bool) procMetrics {
	var p procMetrics
	page := uint64(os.Getpagesize()) //nolint:gosec // G115: a page size is positive
	var reapedTicks uint64
	for i, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		b, err := os.ReadFile(filepath.Join(dir, "stat")) //nolint:gosec // G304: a /proc file of a numbered process
		if err != nil {
			continue
		}
		st, ok := parseStatFields(string(b))
		if !ok {
			continue
		}
		p.processes++
		p.threads += st.threads
		p.userTicks += st.utime
		p.systemTicks += st.stime
		if i == 0 {
			p.userTicks += st.cutime
			p.systemTicks += st.cstime
			reapedTicks = st.cutime + st.cstime
		}
		if ns, ok := threadsRuntime(dir); ok {
			p.cpuNanos += ns
		} else {
			p.cpuNanos += (st.utime + st.stime) * (1e9 / clockTicks)
		}
		p.rss += st.rss * page
		if !files {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			p.fds++
			if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				p.sockets++
			}
		}
		if i == 0 {
			if b, err := os.ReadFile(filepath.Join(dir, "limits")); err == nil { //nolint:gosec // G304: a /proc file of a numbered process
				p.nofile = softLimit(string(b), "Max open files")
			}
		}
	}
	p.cpuNanos += reapedTicks * (1e9 / clockTicks)
	return p
}

// threadsRuntime sums the time the threads of the process at dir (a
// /proc/PID directory) have run, in nanoseconds, from their schedstat
// files: utime and stime count whole clock ticks, and a process that
// ran for less than one (an app that sleeps) would count none. false
// when a file cannot be read (a kernel without CONFIG_SCHED_INFO, the
// process gone).
func threadsRuntime(dir string) (uint64, bool) {
	tasks, err := os.ReadDir(filepath.Join(dir, "task"))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum uint64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat")) //nolint:gosec // G304: a /proc file of a numbered process
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, false
		}
		ns, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += ns
	}
	return sum, true
}

// statFields are the fields of /proc/PID/stat metrics read.
type statFields struct {
	utime, stime, cutime, cstime, threads, rss uint64
}

// parseStatFields reads /proc/PID/stat, whose second field (the command,
// in parentheses) may hold spaces and parentheses itself.
func parseStatFields(s string) (statFields, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return statFields{}, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state).
	if len(f) < 22 {
		return statFields{}, false
	}
	n := func(field int) uint64 { v, _ := strconv.ParseUint(f[field-3], 10, 64); return v }
	return statFields{utime: n(14), stime: n(15), cutime: n(16), cstime: n(17), threads: n(20), rss: n(24)}, true
}

// softLimit reads the soft limit of the /proc/PID/limits line that
// starts with name; nil when there is none or it is "unlimited".
func softLimit(limits, name string) *uint64 {
	for l := range strings.Lines(limits) {
		rest, ok := strings.CutPrefix(l, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil
		}
		return &n
	}
	return nil
}
