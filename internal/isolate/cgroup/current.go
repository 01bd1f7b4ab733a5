package cgroup

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/mountplan"
)

// v1Unlimited is the smallest value cgroup v1 prints for "no memory
// limit" (PAGE_COUNTER_MAX pages, rounded); anything at or above it means
// none.
const v1Unlimited = 1 << 62

// Current returns the limits of the cgroup the calling process is in, as
// an app sees them: it finds itself in /proc/self/cgroup and reads the
// control files under the mounts of /proc/self/mountinfo. A limit that is
// not set is 0. CPUShares is the weight in effect (1024 when none was
// set, on v1); on cgroup v2 it is converted back from cpu.weight and may
// be off by the rounding of SharesToWeight.
//
// It needs no privilege, only the cgroup filesystems mounted where the
// process can see them (see Documentation/isolators.md).
func Current() (Limits, error) {
	mounts, self, err := readProc()
	if err != nil {
		return Limits{}, err
	}
	return current(mounts, self, DefaultRoot)
}

func current(mounts []mountplan.MountInfo, self []Membership, root string) (Limits, error) {
	l, err := findLayout(mounts, self, root)
	if err != nil {
		return Limits{}, err
	}
	var out Limits
	if l.version == 2 {
		dir, err := underMount(l.mount, l.root, l.self)
		if err != nil {
			return Limits{}, err
		}
		if v, err := readFile(filepath.Join(dir, "memory.max")); err == nil && v != "max" {
			if out.MemoryMax, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Limits{}, fmt.Errorf("parse memory.max: %w", err)
			}
		}
		if v, err := readFile(filepath.Join(dir, "cpu.max")); err == nil {
			q, p, _ := strings.Cut(v, " ")
			if q != "max" {
				if out.CPUQuota, err = strconv.ParseInt(q, 10, 64); err != nil {
					return Limits{}, fmt.Errorf("parse cpu.max: %w", err)
				}
				if out.CPUPeriod, err = strconv.ParseInt(p, 10, 64); err != nil {
					return Limits{}, fmt.Errorf("parse cpu.max: %w", err)
				}
			}
		}
		if v, err := readFile(filepath.Join(dir, "cpu.weight")); err == nil {
			w, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Limits{}, fmt.Errorf("parse cpu.weight: %w", err)
			}
			out.CPUShares = weightToShares(w)
		}
		return out, nil
	}
	if m, ok := l.v1["memory"]; ok {
		dir, err := underMount(m.mountPoint, m.root, m.self)
		if err != nil {
			return Limits{}, err
		}
		v, err := readFile(filepath.Join(dir, "memory.limit_in_bytes"))
		if err != nil {
			return Limits{}, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Limits{}, fmt.Errorf("parse memory.limit_in_bytes: %w", err)
		}
		if n < v1Unlimited {
			out.MemoryMax = n
		}
	}
	if m, ok := l.v1["cpu"]; ok {
		dir, err := underMount(m.mountPoint, m.root, m.self)
		if err != nil {
			return Limits{}, err
		}
		vals := map[string]int64{}
		for _, f := range []string{"cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"} {
			v, err := readFile(filepath.Join(dir, f))
			if err != nil {
				return Limits{}, err
			}
			if vals[f], err = strconv.ParseInt(v, 10, 64); err != nil {
				return Limits{}, fmt.Errorf("parse %s: %w", f, err)
			}
		}
		if q := vals["cpu.cfs_quota_us"]; q > 0 {
			out.CPUQuota, out.CPUPeriod = q, vals["cpu.cfs_period_us"]
		}
		out.CPUShares = uint64(vals["cpu.shares"]) //nolint:gosec // G115: the kernel's cpu.shares is 2 to 262144
	}
	return out, nil
}
