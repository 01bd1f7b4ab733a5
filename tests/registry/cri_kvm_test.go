//go:build functional

package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCRIKvmLifecycle drives a container on the CRI's kvm runtime handler
// (stage1-kvm, beside the nscn binary) with crictl, as a kubelet would:
// the sandbox boots a guest (seconds under TCG), a container is created,
// started, writes its log, is entered with exec, stopped and removed, and
// the sandbox is stopped and removed, leaving no pod, network namespace or
// mount. One guest: each costs seconds under TCG.
func TestCRIKvmLifecycle(t *testing.T) {
	reg := startRegistry(t, registryOpts{tls: true})
	reg.push("team/greet:v1", greetImage(t))
	e := teamEnv(t, reg)
	s := startCRI(t, e, filepath.Join(t.TempDir(), "cri.sock"))
	collectPods(t, e)
	netnsBefore := netnsNames(t)

	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	podCfg := filepath.Join(dir, "pod.json")
	writeJSON(t, podCfg, map[string]any{
		"metadata":      map[string]any{"name": "kvm-lifecycle", "namespace": "default", "uid": "uid-kvm-1", "attempt": 0},
		"hostname":      "kvm-lifecycle",
		"log_directory": logDir,
	})
	image := reg.host + "/team/greet:v1"
	ctrCfg := filepath.Join(dir, "ctr.json")
	writeJSON(t, ctrCfg, map[string]any{
		"metadata": map[string]any{"name": "main"},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/sh", "-c", "echo out-line; echo err-line >&2; trap 'exit 3' TERM; while :; do sleep 1; done"},
		"envs":     []map[string]string{{"key": "GREETING", "value": "hello-kvm"}},
		"log_path": "main/0.log",
	})
	s.crictl(true, "pull", image)
	out, _ := s.crictl(true, "runp", "--runtime", "kvm", podCfg)
	podID := strings.TrimSpace(out)
	if len(podID) != 32 {
		t.Fatalf("runp printed %q, want a sandbox ID", out)
	}
	// A container's stdin cannot reach the guest: refused, with why.
	stdinCfg := filepath.Join(dir, "stdin.json")
	writeJSON(t, stdinCfg, map[string]any{
		"metadata": map[string]any{"name": "with-stdin"},
		"image":    map[string]any{"image": image},
		"command":  []string{"/bin/cat"},
		"stdin":    true,
	})
	if _, stderr := s.crictl(false, "create", podID, stdinCfg, podCfg); !strings.Contains(stderr, "stdin") {
		t.Fatalf("create with stdin on kvm: the refusal does not say why:\n%s", stderr)
	}
	out, _ = s.crictl(true, "create", podID, ctrCfg, podCfg)
	ctrID := strings.TrimSpace(out)
	s.crictl(true, "start", ctrID)
	if out, _ := s.crictl(true, "ps", "-q", "--state", "running"); strings.TrimSpace(out) != ctrID {
		t.Fatalf("running containers: %q, want %s", out, ctrID)
	}

	// The container's output, relayed from the guest, in the kubelet's
	// log file.
	logFile := filepath.Join(logDir, "main", "0.log")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(logFile) //nolint:gosec // G304: the test's log file
		if strings.Contains(string(b), " stdout F out-line\n") && strings.Contains(string(b), " stderr F err-line\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log file %s: %q\nserver:\n%s", logFile, b, s.output())
		}
	}
	if stdout, stderr := s.crictl(true, "logs", ctrID); stdout != "out-line\n" || !strings.HasSuffix(stderr, "err-line\n") {
		t.Fatalf("crictl logs: stdout %q, stderr %q", stdout, stderr)
	}

	// exec, through the guest's agent.
	if out, _ := s.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "echo $GREETING"); strings.TrimSpace(out) != "hello-kvm" {
		t.Fatalf("exec in the container printed %q", out)
	}
	if _, stderr := s.crictl(false, "exec", "--sync", ctrID, "/bin/sh", "-c", "exit 3"); !strings.Contains(stderr, "3") {
		t.Fatalf("exec's exit status 3 not reported:\n%s", stderr)
	}

	s.crictl(true, "stop", ctrID)
	out, _ = s.crictl(true, "inspect", "-o", "json", ctrID)
	var cs struct {
		Status struct {
			State    string `json:"state"`
			ExitCode int    `json:"exitCode"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil || cs.Status.State != "CONTAINER_EXITED" || cs.Status.ExitCode != 3 {
		t.Fatalf("a stopped container: %v\n%s", err, out)
	}
	s.crictl(true, "rm", ctrID)
	if out, _ := s.crictl(true, "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left after rm: %q", out)
	}
	s.crictl(true, "stopp", podID)
	s.crictl(true, "rmp", podID)
	if out, _ := s.crictl(true, "pods", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("sandboxes left after rmp: %q", out)
	}
	if list := e.ok("list", "--no-legend").stdout; strings.TrimSpace(list) != "" {
		t.Fatalf("pods left after rmp:\n%s", list)
	}
	for _, n := range netnsNames(t) {
		if strings.Contains(n, podID[:8]) {
			t.Fatalf("network namespace %s left (before: %v)", n, netnsBefore)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), e.dir) {
		t.Fatalf("mounts left under %s:\n%s", e.dir, mounts)
	}
}
