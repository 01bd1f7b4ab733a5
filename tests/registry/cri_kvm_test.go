//go:build functional

package registry

import (
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
	h := newCRIHarness(t)
	netnsBefore := netnsNames(t)
	logDir := filepath.Join(h.dir, "logs")
	podID, podCfg := h.runPod("kvm-lifecycle", map[string]any{
		"hostname":      "kvm-lifecycle",
		"log_directory": logDir,
	}, "--runtime", "kvm")
	// A container's stdin cannot reach the guest: refused, with why.
	stdinCfg := h.containerConfig("with-stdin", map[string]any{"command": []string{"/bin/cat"}, "stdin": true})
	if _, stderr := h.crictl(false, "create", podID, stdinCfg, podCfg); !strings.Contains(stderr, "stdin") {
		t.Fatalf("create with stdin on kvm: the refusal does not say why:\n%s", stderr)
	}
	ctrID := h.startContainer(podID, podCfg, "main", map[string]any{
		"command":  []string{"/bin/sh", "-c", "echo out-line; echo err-line >&2; trap 'exit 3' TERM; while :; do sleep 1; done"},
		"envs":     []map[string]string{{"key": "GREETING", "value": "hello-kvm"}},
		"log_path": "main/0.log",
	})
	if out, _ := h.crictl(true, "ps", "-q", "--state", "running"); strings.TrimSpace(out) != ctrID {
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
			t.Fatalf("log file %s: %q\nserver:\n%s", logFile, b, h.output())
		}
	}
	if stdout, stderr := h.crictl(true, "logs", ctrID); stdout != "out-line\n" || !strings.HasSuffix(stderr, "err-line\n") {
		t.Fatalf("crictl logs: stdout %q, stderr %q", stdout, stderr)
	}

	// exec, through the guest's agent.
	if out, _ := h.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "echo $GREETING"); strings.TrimSpace(out) != "hello-kvm" {
		t.Fatalf("exec in the container printed %q", out)
	}
	if _, stderr := h.crictl(false, "exec", "--sync", ctrID, "/bin/sh", "-c", "exit 3"); !strings.Contains(stderr, "3") {
		t.Fatalf("exec's exit status 3 not reported:\n%s", stderr)
	}

	h.crictl(true, "stop", ctrID)
	if st := h.containerStatus(ctrID); st.State != "CONTAINER_EXITED" || st.ExitCode != 3 {
		t.Fatalf("a stopped container: %+v", st)
	}
	h.removeContainers(ctrID)
	h.removePod(podID)
	for _, n := range netnsNames(t) {
		if strings.Contains(n, podID[:8]) {
			t.Fatalf("network namespace %s left (before: %v)", n, netnsBefore)
		}
	}
}
