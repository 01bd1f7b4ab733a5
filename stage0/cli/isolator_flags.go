package cli

import (
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/isolate/caps"
)

// isolatorFlags turns the per-app isolator flags of run and prepare into
// isolators, in a fixed order; they replace the image's isolators of the
// same kind (a --caps-retain also replaces an image's remove-set, and the
// other way round). Bad values are usage errors naming the flag.
func isolatorFlags(ra *runArgs, a *appArgs) ([]types.Isolator, error) {
	var out []types.Isolator
	if v := ra.get(a, "memory"); v != "" {
		iso, err := types.NewResourceMemoryIsolator(v, v)
		if err != nil {
			return nil, usageErrorf("--memory %q: %v (use the Kubernetes notation, e.g. 64Mi)", v, err)
		}
		if iso.Limit().Sign() <= 0 {
			return nil, usageErrorf("--memory %q: the limit must be positive (e.g. 64Mi)", v)
		}
		out = append(out, iso.AsIsolator())
	}
	if v := ra.get(a, "cpu"); v != "" {
		iso, err := types.NewResourceCPUIsolator(v, v)
		if err != nil {
			return nil, usageErrorf("--cpu %q: %v (use the Kubernetes notation, e.g. 500m)", v, err)
		}
		if iso.Limit().MilliValue() <= 0 {
			return nil, usageErrorf("--cpu %q: the limit must be at least 1m (e.g. 500m)", v)
		}
		out = append(out, iso.AsIsolator())
	}
	if v := ra.get(a, "cpu-shares"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, usageErrorf("--cpu-shares %q: not a number (2 to 262144; 1024 is the default weight)", v)
		}
		iso, err := types.NewLinuxCPUShares(n)
		if err != nil {
			return nil, usageErrorf("--cpu-shares %q: %v", v, err)
		}
		out = append(out, iso.AsIsolator())
	}
	retain, remove := ra.get(a, "caps-retain"), ra.get(a, "caps-remove")
	if retain != "" && remove != "" {
		return nil, usageErrorf("--caps-retain and --caps-remove cannot be used together")
	}
	for _, c := range []struct {
		flag, value string
		retain      bool
	}{{"caps-retain", retain, true}, {"caps-remove", remove, false}} {
		if c.value == "" {
			continue
		}
		names, err := capNames(c.flag, c.value)
		if err != nil {
			return nil, err
		}
		var iso *types.Isolator
		if c.retain {
			s, err := types.NewLinuxCapabilitiesRetainSet(names...)
			if err == nil {
				iso, err = s.AsIsolator()
			}
			if err != nil {
				return nil, usageErrorf("--%s %q: %v", c.flag, c.value, err)
			}
		} else {
			s, err := types.NewLinuxCapabilitiesRevokeSet(names...)
			if err == nil {
				iso, err = s.AsIsolator()
			}
			if err != nil {
				return nil, usageErrorf("--%s %q: %v", c.flag, c.value, err)
			}
		}
		out = append(out, *iso)
	}
	if v := ra.get(a, "seccomp"); v != "" {
		iso, err := parseSeccompFlag(v)
		if err != nil {
			return nil, err
		}
		out = append(out, *iso)
	}
	if v := ra.get(a, "oom-score-adj"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, usageErrorf("--oom-score-adj %q: not a number (-1000 to 1000)", v)
		}
		iso, err := types.NewLinuxOOMScoreAdj(n)
		if err != nil {
			return nil, usageErrorf("--oom-score-adj %q: %v", v, err)
		}
		out = append(out, iso.AsIsolator())
	}
	return out, nil
}

// capNames parses a comma-separated capability list. Names are taken as
// rkt took them: CAP_NET_ADMIN, or net_admin for short, and must be names
// nscn knows (caps.Parse). Whether the running kernel knows each is
// checked by the stage1 (isolate.PolicyFor).
func capNames(flag, v string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.ToUpper(strings.TrimSpace(s))
		if s == "" {
			return nil, usageErrorf("--%s %q: empty capability name", flag, v)
		}
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		if s == "CAP_" {
			return nil, usageErrorf("--%s %q: empty capability name", flag, v)
		}
		for _, r := range s {
			if (r < 'A' || r > 'Z') && r != '_' {
				return nil, usageErrorf("--%s %q: %q is not a capability name", flag, v, s)
			}
		}
		if _, err := caps.Parse(s); err != nil {
			return nil, usageErrorf("--%s %q: %q is not a capability nscn knows", flag, v, s)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseSeccompFlag parses --seccomp mode=retain|remove[,errno=ENAME],SYSCALL,…
// into a seccomp retain-set or remove-set isolator. Syscall names and
// groups (@appc.io/all, …) are checked by the stage1.
func parseSeccompFlag(v string) (*types.Isolator, error) {
	var mode, errno string
	var syscalls []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch k, val, ok := strings.Cut(f, "="); {
		case ok && k == "mode":
			mode = val
		case ok && k == "errno":
			if val == "" || strings.ToUpper(val) != val || !strings.HasPrefix(val, "E") {
				return nil, usageErrorf("--seccomp %q: errno %q is not an errno name such as EPERM", v, val)
			}
			errno = val
		case ok:
			return nil, usageErrorf("--seccomp %q: unknown key %q (want mode=retain|remove[,errno=ENAME],SYSCALL,...)", v, k)
		case f == "":
			return nil, usageErrorf("--seccomp %q: empty syscall name", v)
		default:
			syscalls = append(syscalls, f)
		}
	}
	if len(syscalls) == 0 {
		return nil, usageErrorf("--seccomp %q: no syscalls (want mode=retain|remove[,errno=ENAME],SYSCALL,...)", v)
	}
	var iso *types.Isolator
	var err error
	switch mode {
	case "retain":
		var s *types.LinuxSeccompRetainSet
		if s, err = types.NewLinuxSeccompRetainSet(errno, syscalls...); err == nil {
			iso, err = s.AsIsolator()
		}
	case "remove":
		var s *types.LinuxSeccompRemoveSet
		if s, err = types.NewLinuxSeccompRemoveSet(errno, syscalls...); err == nil {
			iso, err = s.AsIsolator()
		}
	case "":
		return nil, usageErrorf("--seccomp %q: mode=retain or mode=remove is required", v)
	default:
		return nil, usageErrorf("--seccomp %q: mode %q is neither retain nor remove", v, mode)
	}
	if err != nil {
		return nil, usageErrorf("--seccomp %q: %v", v, err)
	}
	return iso, nil
}
