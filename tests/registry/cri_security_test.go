//go:build functional

package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCRISecurityContextAndStats drives, with crictl, containers whose
// security context and resources nscn maps onto its isolators: dropped
// capabilities, no_new_privs, a Localhost seccomp profile, masked and
// read-only paths, supplemental groups, a memory limit (its own cgroup,
// on this v1 host made by app/add), stats read from those cgroups, an
// OOM kill reported as OOMKilled, new limits set on a running container
// (crictl update), and what is refused (a privileged
// container in an unprivileged sandbox). The host's PID namespace, once
// refused here, is TestCRIHostPID's.
// Nothing is left after rmp: no pod, no app cgroup.
func TestCRISecurityContextAndStats(t *testing.T) {
	reg := startRegistry(t, registryOpts{tls: true})
	reg.push("team/greet:v1", greetImage(t))
	e := teamEnv(t, reg)
	s := startCRI(t, e, filepath.Join(t.TempDir(), "cri.sock"))
	collectPods(t, e)
	image := reg.host + "/team/greet:v1"
	s.crictl(true, "pull", image)
	dir := t.TempDir()

	podCfg := filepath.Join(dir, "pod.json")
	writeJSON(t, podCfg, map[string]any{
		"metadata": map[string]any{"name": "secctx", "namespace": "default", "uid": "uid-secctx-1", "attempt": 0},
		"linux":    map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	})
	out, _ := s.crictl(true, "runp", podCfg)
	podID := strings.TrimSpace(out)

	profile := filepath.Join(dir, "block-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	confined := filepath.Join(dir, "confined.json")
	writeJSON(t, confined, map[string]any{
		"metadata": map[string]any{"name": "confined"},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/sh", "-c", "head -c 4000000 /dev/zero > /fill; exec sleep 300"},
		"linux": map[string]any{
			"resources": map[string]any{"memory_limit_in_bytes": 64 << 20},
			"security_context": map[string]any{
				"capabilities":        map[string]any{"drop_capabilities": []string{"ALL"}},
				"no_new_privs":        true,
				"seccomp":             map[string]any{"profile_type": 2, "localhost_ref": profile},
				"masked_paths":        []string{"/srv/message"},
				"readonly_paths":      []string{"/usr"},
				"supplemental_groups": []int{1234},
			},
		},
	})
	out, _ = s.crictl(true, "create", podID, confined, podCfg)
	ctrID := strings.TrimSpace(out)
	s.crictl(true, "start", ctrID)
	var status string
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ = s.crictl(true, "exec", "--sync", ctrID, "cat", "/proc/self/status")
		if strings.Contains(status, "CapBnd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec in the container printed %q", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{`CapBnd:\s+0000000000000000`, `NoNewPrivs:\s+1`, `Seccomp:\s+2`, `Groups:.*\b1234\b`} {
		if !regexp.MustCompile(want).MatchString(status) {
			t.Errorf("/proc/self/status does not match %q:\n%s", want, status)
		}
	}
	if out, _ := s.crictl(true, "exec", "--sync", ctrID, "cat", "/srv/message"); strings.TrimSpace(out) != "" {
		t.Errorf("masked /srv/message reads %q", out)
	}
	if _, stderr := s.crictl(false, "exec", "--sync", ctrID, "touch", "/usr/x"); !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("touch in read-only /usr: %q", stderr)
	}
	if _, stderr := s.crictl(false, "exec", "--sync", ctrID, "mkdir", "/x"); !strings.Contains(stderr, "Operation not permitted") {
		t.Errorf("mkdir under the seccomp profile: %q", stderr)
	}

	// Stats, from the app's own cgroups (it has a memory limit).
	var st struct {
		Stats []struct {
			Attributes struct {
				ID string `json:"id"`
			} `json:"attributes"`
			CPU struct {
				UsageCoreNanoSeconds struct {
					Value string `json:"value"`
				} `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory struct {
				WorkingSetBytes struct {
					Value string `json:"value"`
				} `json:"workingSetBytes"`
			} `json:"memory"`
			WritableLayer struct {
				UsedBytes struct {
					Value string `json:"value"`
				} `json:"usedBytes"`
			} `json:"writableLayer"`
		} `json:"stats"`
	}
	out, _ = s.crictl(true, "stats", "-o", "json", "--id", ctrID)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Stats) != 1 || st.Stats[0].Attributes.ID != ctrID {
		t.Fatalf("crictl stats: %v\n%s", err, out)
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	c := st.Stats[0]
	if num(c.CPU.UsageCoreNanoSeconds.Value) == 0 || num(c.Memory.WorkingSetBytes.Value) == 0 || num(c.WritableLayer.UsedBytes.Value) < 4000000 {
		t.Errorf("stats of a running container with a 4 MB file in its writable layer:\n%s", out)
	}
	if out, _ := s.crictl(true, "statsp", "-o", "json", "--id", podID); !strings.Contains(out, ctrID) {
		t.Errorf("crictl statsp does not list the container:\n%s", out)
	}

	// New limits on the running container's own cgroup.
	s.crictl(true, "update", "--memory", strconv.Itoa(96<<20), ctrID)
	if out, _ := s.crictl(true, "exec", "--sync", ctrID, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); strings.TrimSpace(out) != strconv.Itoa(96<<20) {
		t.Errorf("the memory limit after crictl update reads %q, want %d", out, 96<<20)
	}
	if _, stderr := s.crictl(false, "update", "--cpu-share", "512", ctrID); !strings.Contains(stderr, "no cpu cgroup") {
		t.Errorf("a CPU update of a container created without a CPU limit: %q", stderr)
	}

	// A container over its memory limit is OOMKilled, with 137.
	oom := filepath.Join(dir, "oom.json")
	writeJSON(t, oom, map[string]any{
		"metadata": map[string]any{"name": "oom"},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M"},
		"linux":    map[string]any{"resources": map[string]any{"memory_limit_in_bytes": 16 << 20}},
	})
	out, _ = s.crictl(true, "create", podID, oom, podCfg)
	oomID := strings.TrimSpace(out)
	s.crictl(true, "start", oomID)
	var cs struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"status"`
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		out, _ = s.crictl(true, "inspect", "-o", "json", oomID)
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatal(err)
		}
		if cs.Status.State == "CONTAINER_EXITED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the OOM container did not end:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cs.Status.ExitCode != 137 || cs.Status.Reason != "OOMKilled" {
		t.Errorf("the OOM container: exit code %d, reason %q; want 137 and OOMKilled", cs.Status.ExitCode, cs.Status.Reason)
	}

	// Privileged needs a privileged sandbox.
	priv := filepath.Join(dir, "priv.json")
	writeJSON(t, priv, map[string]any{
		"metadata": map[string]any{"name": "priv"},
		"image":    map[string]any{"image": image},
		"linux":    map[string]any{"security_context": map[string]any{"privileged": true}},
	})
	if _, stderr := s.crictl(false, "create", podID, priv, podCfg); !strings.Contains(stderr, "privileged sandbox") {
		t.Errorf("a privileged container in an unprivileged sandbox: %s", stderr)
	}

	uuid := podUUIDOf(podID)
	s.crictl(true, "stopp", podID)
	s.crictl(true, "rmp", podID)
	if list := e.ok("list", "--no-legend").stdout; strings.TrimSpace(list) != "" {
		t.Fatalf("pods left after rmp:\n%s", list)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/*/nscn/" + uuid); len(left) > 0 {
		t.Errorf("app cgroups left: %v", left)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/nscn/" + uuid); len(left) > 0 {
		t.Errorf("app cgroups left: %v", left)
	}
}

// podUUIDOf is the pod UUID of a sandbox ID (the UUID without dashes).
func podUUIDOf(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}
