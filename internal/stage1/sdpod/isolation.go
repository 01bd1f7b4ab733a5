package sdpod

import (
	"encoding/json"
	"path"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
)

// IsolationFile is run's record of how the pod is confined, in the pod
// directory on the host (not in the stage1 rootfs, which the pod can
// write): the isolate.Options of the run flags, so that enter computes
// the same policy as run, and the host directories of each app's cgroups,
// which enter joins and gc removes.
const IsolationFile = "nspawn-isolation.json"

// CgroupBindDir is where systemd-nspawn binds each app's cgroup
// directories into the pod: CgroupBindDir/APP/HIERARCHY, HIERARCHY being
// the name of the hierarchy's directory under /sys/fs/cgroup ("memory",
// "cpu,cpuacct").
const CgroupBindDir = "/nscn/cgroup"

// Isolation is the content of IsolationFile.
type Isolation struct {
	Options isolate.Options `json:"options"`
	// Cgroups maps an app's name to its cgroup directories on the host,
	// one per hierarchy; an app without resource limits has none.
	Cgroups map[string][]string `json:"cgroups,omitempty"`
	// Registered: systemd-machined registered the pod (the host runs
	// systemd and machined), so gc asks machined to end what is left.
	Registered bool `json:"registered,omitempty"`
}

// cgroupRoot is where the host's cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup/"

// ParseIsolation decodes and checks IsolationFile: every cgroup directory
// must be one of this pod's (below /sys/fs/cgroup, ending in
// nscn/UUID/APP), since enter writes into them and gc removes them.
func ParseIsolation(data []byte, uuid string) (*Isolation, error) {
	var iso Isolation
	if err := json.Unmarshal(data, &iso); err != nil {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "parse %s: %w", IsolationFile, err)
	}
	for app, dirs := range iso.Cgroups {
		for _, d := range dirs {
			if _, err := CgroupHierarchy(d, uuid, app); err != nil {
				return nil, err
			}
		}
	}
	return &iso, nil
}

// CgroupHierarchy checks that dir is the cgroup of app in pod uuid
// (/sys/fs/cgroup/HIERARCHY/…/nscn/UUID/APP, clean) and returns HIERARCHY.
func CgroupHierarchy(dir, uuid, app string) (string, error) {
	rest, ok := strings.CutPrefix(dir, cgroupRoot)
	h, _, _ := strings.Cut(rest, "/")
	if !ok || filepath.Clean(dir) != dir || h == "" || h == ".." ||
		!strings.HasSuffix(dir, "/"+path.Join("nscn", uuid, app)) || !appName(app) {
		return "", errdefs.InvalidArgument("%q is not a cgroup of app %q of pod %s", dir, app, uuid)
	}
	return h, nil
}

func appName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// AppCgroupName is the cgroup of an app below the stage1's own cgroup.
func AppCgroupName(uuid, app string) string { return path.Join("nscn", uuid, app) }

// CgroupBinds returns the binds that give the pod each app's cgroup
// directories, and records their pod paths in the apps (App.Cgroups).
func CgroupBinds(pod *Pod, iso *Isolation) ([]Bind, error) {
	var out []Bind
	for i := range pod.Apps {
		a := &pod.Apps[i]
		for _, d := range iso.Cgroups[a.Spec.Name] {
			h, err := CgroupHierarchy(d, pod.UUID, a.Spec.Name)
			if err != nil {
				return nil, err
			}
			target := path.Join(CgroupBindDir, a.Spec.Name, h)
			out = append(out, Bind{Source: d, Target: target})
			if a.Cgroups == nil {
				a.Cgroups = map[string]string{}
			}
			a.Cgroups[h] = target
		}
	}
	return out, nil
}
