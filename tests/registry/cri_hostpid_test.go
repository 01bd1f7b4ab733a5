//go:build functional

package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCRIHostPID drives, with crictl, a sandbox in the host's PID
// namespace (namespace_options pid NODE): its container's process is a
// process of the host's namespace, its getpid() the pid the host sees
// for it, with the container's command line; a second container of the
// sandbox sees it with pidof, as critest's HostPID spec asks; a stop's
// SIGTERM reaches it (it dies of it, 143, before the timeout's SIGKILL)
// and nothing of it is left once the sandbox is removed.
func TestCRIHostPID(t *testing.T) {
	h := newCRIHarness(t)
	hostNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}

	hostPID := map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": 2}}}
	podID, podCfg := h.runPod("hostpid", map[string]any{"linux": hostPID})
	container := func(name string, command ...string) string {
		t.Helper()
		return h.startContainer(podID, podCfg, name, map[string]any{"command": command, "linux": hostPID})
	}
	first := container("first", "/bin/sh", "-c", "echo $$ > /tmp/pid; exec sleep 300")
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(200 * time.Millisecond) {
		out, _ := h.crictl(true, "exec", "--sync", first, "/bin/sh", "-c", "cat /tmp/pid 2>/dev/null; true")
		pid, _ = strconv.Atoi(strings.TrimSpace(out))
		if time.Now().After(deadline) {
			t.Fatalf("the container wrote no pid: %q", out)
		}
	}
	if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || string(c) != "sleep\x00300\x00" {
		t.Fatalf("the host's process %d, the container's getpid(), is %q (%v), want its sleep 300", pid, c, err)
	}
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || ns != hostNS {
		t.Errorf("the container's PID namespace is %q (%v), want the host's %s", ns, err, hostNS)
	}
	second := container("second", "/bin/sleep", "301")
	var pids string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		pids, _ = h.crictl(true, "exec", "--sync", second, "/bin/sh", "-c", "pidof sleep; true")
		if len(strings.Fields(pids)) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Contains(strings.Fields(pids), strconv.Itoa(pid)) {
		t.Errorf("pidof sleep in the second container: %q, want the first's pid %d among them", pids, pid)
	}
	status, _ := h.crictl(true, "inspectp", "-o", "json", podID)
	if !strings.Contains(status, `"pid": "NODE"`) {
		t.Errorf("the sandbox's status does not say its PID namespace is the host's:\n%s", status)
	}
	h.crictl(true, "stop", "--timeout", "20", first)
	if st := h.containerStatus(first); st.State != "CONTAINER_EXITED" || st.ExitCode != 143 {
		t.Errorf("the host-PID container after stop: %+v, want exited with 143 (the relayed SIGTERM)", st)
	}
	if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && string(c) == "sleep\x00300\x00" {
		t.Errorf("the stopped container's process %d still runs", pid)
	}
	h.removePod(podID)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if c, err := os.ReadFile(p); err == nil && string(c) == "/bin/sleep\x00301\x00" { //nolint:gosec // G304: a /proc file
			t.Errorf("the second container's sleep is left behind: %s", p)
		}
	}
}
