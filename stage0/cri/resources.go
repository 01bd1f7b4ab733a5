package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
)

// RuntimeConfig reports how the kubelet must lay out cgroups: nscn
// drives the cgroup filesystems directly (package cgroup), without
// systemd, so the driver is cgroupfs.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}}, nil
}

// UpdateContainerResources sets a running container's new CPU and
// memory limits on its app's own cgroups (nscn/UUID/APP, made when it was
// created with limits of that kind): on a v1 host the server writes them
// itself, host-side, as the stage1 wrote the first ones. A container
// created without a limit of a kind has no cgroup to change
// (FailedPrecondition); a unified (v2) host, where the app's cgroup is
// its unit's under the pod's systemd, is not supported yet
// (Unimplemented). oom_score_adj is a process's, set when it starts: it
// is left as it is. The pod manifest keeps the limits the container was
// created with.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	l, err := limitsOf(req.GetLinux())
	if err != nil {
		return nil, toStatus(err)
	}
	if l.IsZero() {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	if c.sb.pod.State != pod.Running {
		return nil, toStatus(errdefs.FailedPrecondition("sandbox %s is not running", c.sb.id))
	}
	mgr, err := s.podCgroups(ctx, c.sb)
	if err != nil {
		return nil, toStatus(err)
	}
	v1, ok := mgr.(*cgroup.V1)
	if !ok {
		return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "changing a container's resources on a unified (cgroup v2) host is not supported yet"))
	}
	if err := v1.Update(appCgroupName(c), l); err != nil {
		return nil, toStatus(fmt.Errorf("container %s: %w", c.meta.ID, err))
	}
	s.log.Info("container resources updated", "container", c.meta.ID, "limits", l)
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// podCgroups is the cgroup manager whose parent cgroups are the pod's
// (those of its pid 1), where the stage1 makes its apps' cgroups.
func (s *Server) podCgroups(ctx context.Context, sb *sandbox) (cgroup.Manager, error) {
	pid, err := sb.pod.PID(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := cgroupsOf(pid)
	if err != nil {
		return nil, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mounts, err := mountplan.ParseMountInfo(bytes.NewReader(mi))
	if err != nil {
		return nil, err
	}
	return cgroup.Detect(mounts, ms, cgroup.Config{})
}

// limitsOf is the cgroup limits of a container's resources, as
// applyResources maps them (its oom_score_adj is not a limit: left out).
func limitsOf(r *runtimeapi.LinuxContainerResources) (cgroup.Limits, error) {
	var isos types.Isolators
	if err := applyResources(r, &isos); err != nil {
		return cgroup.Limits{}, err
	}
	app := &types.App{Exec: types.Exec{"/"}, User: "0", Group: "0"}
	b, err := json.Marshal(isos)
	if err != nil {
		return cgroup.Limits{}, err
	}
	if err := json.Unmarshal(b, &app.Isolators); err != nil {
		return cgroup.Limits{}, err
	}
	p, _, err := isolate.PolicyFor(app, isolate.Options{DisableSeccomp: true, DisableCapabilities: true, DisablePaths: true})
	if err != nil {
		return cgroup.Limits{}, err
	}
	return p.Cgroup, nil
}

// applyResources maps a container's linux.resources onto appc resource
// isolators: the memory limit (resource/memory), the CFS quota and
// period as a CPU limit (resource/cpu), the CPU shares
// (os/linux/cpu-shares) and oom_score_adj (os/linux/oom-score-adj,
// raised to the server's own: lowering it needs CAP_SYS_RESOURCE, which
// a kubelet's runtime may lack, as containerd's restrict_oom_score_adj
// does). What nscn cannot set (cpusets, huge pages, swap beyond the
// memory limit, unified cgroup v2 keys) is refused.
func applyResources(r *runtimeapi.LinuxContainerResources, isos *types.Isolators) error {
	if r == nil {
		return nil
	}
	switch {
	case r.GetCpusetCpus() != "" || r.GetCpusetMems() != "":
		return errdefs.Newf(errdefs.ErrNotImplemented, "cpusets are not supported")
	case len(r.GetHugepageLimits()) > 0 && anyHugepageLimit(r.GetHugepageLimits()):
		return errdefs.Newf(errdefs.ErrNotImplemented, "huge page limits are not supported")
	case len(r.GetUnified()) > 0:
		return errdefs.Newf(errdefs.ErrNotImplemented, "unified cgroup v2 settings are not supported")
	}
	if m := r.GetMemoryLimitInBytes(); m > 0 {
		if sw := r.GetMemorySwapLimitInBytes(); sw > 0 && sw != m {
			return errdefs.Newf(errdefs.ErrNotImplemented, "a swap limit other than the memory limit is not supported")
		}
		q := strconv.FormatInt(m, 10)
		iso, err := types.NewResourceMemoryIsolator(q, q)
		if err != nil {
			return errdefs.InvalidArgument("memory limit %d: %v", m, err)
		}
		*isos = append(*isos, iso.AsIsolator())
	} else if m < 0 {
		return errdefs.InvalidArgument("memory limit %d is negative", m)
	}
	if quota, period := r.GetCpuQuota(), r.GetCpuPeriod(); quota > 0 {
		if period <= 0 {
			period = 100000 // the kernel's default CFS period, µs
		}
		milli := quota * 1000 / period
		if milli < 1 {
			milli = 1
		}
		q := fmt.Sprintf("%dm", milli)
		iso, err := types.NewResourceCPUIsolator(q, q)
		if err != nil {
			return errdefs.InvalidArgument("cpu quota %d every %dµs: %v", quota, period, err)
		}
		*isos = append(*isos, iso.AsIsolator())
	}
	if sh := r.GetCpuShares(); sh > 0 {
		sh = min(max(sh, 2), 262144) // the kernel's range; the kubelet sends 2 for best effort
		iso, err := types.NewLinuxCPUShares(int(sh))
		if err != nil {
			return errdefs.InvalidArgument("cpu shares %d: %v", sh, err)
		}
		*isos = append(*isos, iso.AsIsolator())
	}
	if adj := r.GetOomScoreAdj(); adj != 0 {
		own, err := ownOOMScoreAdj()
		if err != nil {
			return err
		}
		v := min(max(int(adj), own, -1000), 1000)
		iso, err := types.NewLinuxOOMScoreAdj(v)
		if err != nil {
			return errdefs.InvalidArgument("oom_score_adj %d: %v", adj, err)
		}
		*isos = append(*isos, iso.AsIsolator())
	}
	return nil
}

func anyHugepageLimit(ls []*runtimeapi.HugepageLimit) bool {
	for _, l := range ls {
		if l.GetLimit() > 0 {
			return true
		}
	}
	return false
}

// ownOOMScoreAdj reads the server's oom_score_adj: an app's may not be
// lower without CAP_SYS_RESOURCE.
func ownOOMScoreAdj() (int, error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, fmt.Errorf("read own oom_score_adj: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read own oom_score_adj: %w", err)
	}
	return n, nil
}
