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
	h := newCRIHarness(t)
	podID, podCfg := h.runPod("secctx", map[string]any{
		"linux": map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
	})

	profile := filepath.Join(h.dir, "block-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctrID := h.startContainer(podID, podCfg, "confined", map[string]any{
		"command": []string{"/bin/sh", "-c", "head -c 4000000 /dev/zero > /fill; exec sleep 300"},
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
	var status string
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ = h.crictl(true, "exec", "--sync", ctrID, "cat", "/proc/self/status")
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
	if out, _ := h.crictl(true, "exec", "--sync", ctrID, "cat", "/srv/message"); strings.TrimSpace(out) != "" {
		t.Errorf("masked /srv/message reads %q", out)
	}
	if _, stderr := h.crictl(false, "exec", "--sync", ctrID, "touch", "/usr/x"); !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("touch in read-only /usr: %q", stderr)
	}
	if _, stderr := h.crictl(false, "exec", "--sync", ctrID, "mkdir", "/x"); !strings.Contains(stderr, "Operation not permitted") {
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
	out, _ := h.crictl(true, "stats", "-o", "json", "--id", ctrID)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Stats) != 1 || st.Stats[0].Attributes.ID != ctrID {
		t.Fatalf("crictl stats: %v\n%s", err, out)
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	c := st.Stats[0]
	if num(c.CPU.UsageCoreNanoSeconds.Value) == 0 || num(c.Memory.WorkingSetBytes.Value) == 0 || num(c.WritableLayer.UsedBytes.Value) < 4000000 {
		t.Errorf("stats of a running container with a 4 MB file in its writable layer:\n%s", out)
	}
	if out, _ := h.crictl(true, "statsp", "-o", "json", "--id", podID); !strings.Contains(out, ctrID) {
		t.Errorf("crictl statsp does not list the container:\n%s", out)
	}

	// New limits on the running container's own cgroup.
	h.crictl(true, "update", "--memory", strconv.Itoa(96<<20), ctrID)
	if out, _ := h.crictl(true, "exec", "--sync", ctrID, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); strings.TrimSpace(out) != strconv.Itoa(96<<20) {
		t.Errorf("the memory limit after crictl update reads %q, want %d", out, 96<<20)
	}
	if _, stderr := h.crictl(false, "update", "--cpu-share", "512", ctrID); !strings.Contains(stderr, "no cpu cgroup") {
		t.Errorf("a CPU update of a container created without a CPU limit: %q", stderr)
	}

	// A container over its memory limit is OOMKilled, with 137.
	oomID := h.startContainer(podID, podCfg, "oom", map[string]any{
		"command": []string{"/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M"},
		"linux":   map[string]any{"resources": map[string]any{"memory_limit_in_bytes": 16 << 20}},
	})
	if st := h.waitExited(oomID); st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("the OOM container: exit code %d, reason %q; want 137 and OOMKilled", st.ExitCode, st.Reason)
	}

	// Privileged needs a privileged sandbox.
	priv := h.containerConfig("priv", map[string]any{
		"linux": map[string]any{"security_context": map[string]any{"privileged": true}},
	})
	if _, stderr := h.crictl(false, "create", podID, priv, podCfg); !strings.Contains(stderr, "privileged sandbox") {
		t.Errorf("a privileged container in an unprivileged sandbox: %s", stderr)
	}

	uuid := podUUIDOf(podID)
	h.removePod(podID)
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
