package cri

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/stage0/apps"
)

// cgroupRoot is where the host mounts its cgroup hierarchies: one
// directory per v1 controller (the hybrid layout of this host), or the
// unified hierarchy itself.
var cgroupRoot = "/sys/fs/cgroup"

// ContainerStats reports one container's CPU, memory and writable layer.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := s.containerStats(ctx, c, nil)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats reports the containers the filter selects (by ID
// or prefix, sandbox and labels), every one without a filter.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtimeapi.ListContainerStatsResponse{}
	err := s.eachContainer(ctx, f.GetPodSandboxId(), f.GetId(), f.GetLabelSelector(), func(c *container, sts []apps.Status) error {
		st, err := s.containerStats(ctx, c, sts)
		if err == nil {
			resp.Stats = append(resp.Stats, st)
		}
		return err
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// PodSandboxStats reports a sandbox's containers and their sum.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if sb == nil {
		return nil, toStatus(errdefs.NotFound("sandbox %s", req.GetPodSandboxId()))
	}
	st, err := s.sandboxStats(ctx, sb)
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats reports the sandboxes the filter selects.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	all, err := s.sandboxes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := req.GetFilter()
	resp := &runtimeapi.ListPodSandboxStatsResponse{}
	for _, sb := range all {
		if f.GetId() != "" && !strings.HasPrefix(sb.id, f.GetId()) {
			continue
		}
		if !labelsMatch(sb.meta.Labels, f.GetLabelSelector()) {
			continue
		}
		st, err := s.sandboxStats(ctx, sb)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Stats = append(resp.Stats, st)
	}
	return resp, nil
}

func (s *Server) sandboxStats(ctx context.Context, sb *sandbox) (*runtimeapi.PodSandboxStats, error) {
	sts := apps.Statuses(sb.pod, sb.pm)
	now := time.Now().UnixNano()
	ps := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id:          sb.id,
			Metadata:    &runtimeapi.PodSandboxMetadata{Name: sb.meta.Name, Uid: sb.meta.UID, Namespace: sb.meta.Namespace, Attempt: sb.meta.Attempt},
			Labels:      sb.meta.Labels,
			Annotations: sb.meta.Annotations,
		},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
			Memory: &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, UsageBytes: &runtimeapi.UInt64Value{}},
		},
	}
	for _, c := range s.containersOf(sb) {
		cs, err := s.containerStats(ctx, c, sts)
		if err != nil {
			return nil, err
		}
		ps.Linux.Containers = append(ps.Linux.Containers, cs)
		ps.Linux.Cpu.UsageCoreNanoSeconds.Value += cs.GetCpu().GetUsageCoreNanoSeconds().GetValue()
		ps.Linux.Memory.WorkingSetBytes.Value += cs.GetMemory().GetWorkingSetBytes().GetValue()
		ps.Linux.Memory.UsageBytes.Value += cs.GetMemory().GetUsageBytes().GetValue()
	}
	return ps, nil
}

// containerStats reads a container's usage: CPU and memory from the
// cgroups of its app's main process while it runs (zero otherwise), the
// writable layer from the app's overlay upper directory. sts are the
// sandbox's app statuses (apps.Statuses), the container's own when nil.
func (s *Server) containerStats(ctx context.Context, c *container, sts []apps.Status) (*runtimeapi.ContainerStats, error) {
	var st *apps.Status
	if sts == nil {
		if v, ok := c.status(); ok {
			st = &v
		}
	}
	for i := range sts {
		if sts[i].Name == c.app {
			st = &sts[i]
		}
	}
	now := time.Now().UnixNano()
	cs := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id:          c.meta.ID,
			Metadata:    &runtimeapi.ContainerMetadata{Name: c.meta.Name, Attempt: c.meta.Attempt},
			Labels:      c.meta.Labels,
			Annotations: c.meta.Annotations,
		},
		Cpu:    &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory: &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, UsageBytes: &runtimeapi.UInt64Value{}},
	}
	if st != nil && st.State == apps.Running && st.PID > 0 {
		u, err := readUsage(st.PID, appCgroupName(c))
		if err != nil {
			s.log.Debug("container stats", "container", c.meta.ID, "error", err)
		} else {
			cs.Cpu.UsageCoreNanoSeconds.Value = u.cpuNanos
			cs.Memory.UsageBytes.Value = u.memUsage
			cs.Memory.WorkingSetBytes.Value = u.workingSet
			cs.Memory.RssBytes = &runtimeapi.UInt64Value{Value: u.rss}
		}
	}
	upper, _ := mountplan.AppOverlayDirs(c.sb.pod.Path, c.app)
	wl, err := usage(ctx, upper)
	if err != nil {
		return nil, fmt.Errorf("container %s: writable layer: %w", c.meta.ID, err)
	}
	cs.WritableLayer = wl
	return cs, nil
}

// cgroupUsage is what containerStats reports of a cgroup.
type cgroupUsage struct {
	cpuNanos   uint64
	memUsage   uint64
	workingSet uint64 // usage less the inactive file cache, as cAdvisor has it
	rss        uint64
	// ownCPU and ownMemory: read from the app's own cgroups.
	ownCPU, ownMemory bool
}

// readUsage reads the usage of the app whose main process is pid: from
// its own cgroups (the path ends in own, nscn/UUID/APP: the stage1 makes
// them for an app with limits) when it has them, from its processes
// otherwise, since the cgroup it shares is the pod's or the host's. A
// process that is gone is an errdefs.ErrNotFound error.
func readUsage(pid int, own string) (cgroupUsage, error) {
	ms, err := cgroupsOf(pid)
	if err != nil {
		return cgroupUsage{}, err
	}
	u, err := usageOf(cgroupRoot, ms, own)
	if err != nil {
		return u, err
	}
	if !u.ownCPU || !u.ownMemory {
		p, err := procsUsage("/proc", pid)
		if err != nil {
			return u, err
		}
		if !u.ownCPU {
			u.cpuNanos = p.cpuNanos
		}
		if !u.ownMemory {
			u.memUsage, u.workingSet, u.rss = p.memUsage, p.workingSet, p.rss
		}
	}
	return u, nil
}

// usageOf reads the usage of the cgroups ms names below root, those
// whose path ends in own: the v1 cpuacct and memory controllers', or
// the unified hierarchy's. What it read is marked ownCPU and ownMemory.
func usageOf(root string, ms []cgroup.Membership, own string) (cgroupUsage, error) {
	var u cgroupUsage
	isOwn := func(p string) bool { return strings.HasSuffix(p, "/"+own) }
	var err error
	for _, m := range ms {
		dir := filepath.Join(root, strings.Join(m.Controllers, ","), m.Path)
		if len(m.Controllers) == 0 || !isOwn(m.Path) {
			continue
		}
		if slices.Contains(m.Controllers, "cpuacct") {
			if u.cpuNanos, err = readUint(filepath.Join(dir, "cpuacct.usage")); err != nil {
				return u, err
			}
			u.ownCPU = true
		}
		if slices.Contains(m.Controllers, "memory") {
			if u.memUsage, err = readUint(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
				return u, err
			}
			stat, err := readKeyed(filepath.Join(dir, "memory.stat"))
			if err != nil {
				return u, err
			}
			u.rss = stat["total_rss"]
			u.workingSet = u.memUsage - min(u.memUsage, stat["total_inactive_file"])
			u.ownMemory = true
		}
	}
	p, ok := cgroup.UnifiedPath(ms)
	if !ok || !isOwn(p) {
		return u, nil
	}
	dir := filepath.Join(root, p)
	if cpu, err := readKeyed(filepath.Join(dir, "cpu.stat")); err == nil && !u.ownCPU {
		u.cpuNanos, u.ownCPU = cpu["usage_usec"]*1000, true
	}
	if cur, err := readUint(filepath.Join(dir, "memory.current")); err == nil && !u.ownMemory {
		stat, err := readKeyed(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return u, err
		}
		u.memUsage, u.rss, u.ownMemory = cur, stat["anon"], true
		u.workingSet = cur - min(cur, stat["inactive_file"])
	}
	return u, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture nscn builds for.
const clockTicks = 100

// procsUsage sums the usage of the container whose app's main process
// (its stage1 supervisor, the unit's main process) is pid: CPU time,
// with what the first of them reaped, and resident memory (the working
// set and the usage alike; pages shared between them count once each).
// Its processes are containerProcesses': those of the app's own PID
// namespace, never every process of the pod's, which the supervisor is
// in with the pod's systemd and every other app.
func procsUsage(proc string, pid int) (cgroupUsage, error) {
	pids, err := containerProcesses(proc, pid, nil)
	if err != nil {
		return cgroupUsage{}, err
	}
	p := readProcUsage(proc, pids)
	return cgroupUsage{cpuNanos: p.cpuNanos, memUsage: p.rss, workingSet: p.rss, rss: p.rss}, nil
}

func readUint(p string) (uint64, error) {
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file of a cgroup directory under /sys/fs/cgroup
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return n, nil
}

// readKeyed reads a cgroup file of "key value" lines; lines that are not
// are skipped.
func readKeyed(p string) (map[string]uint64, error) {
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file of a cgroup directory under /sys/fs/cgroup
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// oomKilled reports whether the kernel's OOM killer killed a process in
// the container's memory cgroup: on a v1 host the app's own cgroup
// (nscn/UUID/APP, which stage1-nspawn makes for an app with a memory
// limit below the pod's cgroup) counts its kills in memory.oom_control.
// The cgroup stays until the app is removed, so an exited app is still
// told apart. False when it cannot tell, and on a unified host for now,
// where the app's cgroup is its unit's in the pod's subtree.
func (s *Server) oomKilled(ctx context.Context, c *container) bool {
	pid, err := c.sb.pod.PID(ctx)
	if err != nil || pid <= 0 {
		return false
	}
	ms, err := cgroupsOf(pid)
	if err != nil {
		return false
	}
	return oomKillsIn(cgroupRoot, ms, appCgroupName(c)) > 0
}

// appCgroupName is the cgroup the stage1 makes for an app with limits,
// below the pod's (package cgroup: "stage1s use nscn/<pod uuid>/<app
// name>").
func appCgroupName(c *container) string { return path.Join("nscn", c.sb.pod.UUID, c.app) }

// cgroupsOf reads /proc/PID/cgroup; a process that is gone is an
// errdefs.ErrNotFound error.
func cgroupsOf(pid int) ([]cgroup.Membership, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.NotFound("process %d", pid)
	}
	if err != nil {
		return nil, err
	}
	return cgroup.ParseProcCgroup(bytes.NewReader(b))
}

// oomKillsIn reads the OOM kill count of the cgroup rel below the v1
// memory hierarchy's cgroup of the memberships ms.
func oomKillsIn(root string, ms []cgroup.Membership, rel string) uint64 {
	for _, m := range ms {
		for _, ctrl := range m.Controllers {
			if ctrl == "memory" {
				kv, err := readKeyed(filepath.Join(root, strings.Join(m.Controllers, ","), m.Path, rel, "memory.oom_control"))
				if err != nil {
					return 0
				}
				return kv["oom_kill"]
			}
		}
	}
	return 0
}
