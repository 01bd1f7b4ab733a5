package cri

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
)

// RuntimeConfig reports how the kubelet must lay out cgroups: nscn
// drives the cgroup filesystems directly (package cgroup), without
// systemd, so the driver is cgroupfs.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS,
	}}, nil
}

// UpdateContainerResources is refused: an app's limits are set when it
// is added (its cgroup and its unit), and the stage1 has no entrypoint
// that changes them on a running app yet.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if _, err := s.mustContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return nil, toStatus(errdefs.Newf(errdefs.ErrNotImplemented, "changing a running container's resources is not supported yet: they are set when it is created"))
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
