//go:build functional

package registry

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCRINamespaceModes drives, with crictl, the namespace modes nscn
// gives a pod beyond its own: a container in the CONTAINER PID mode is
// pid 1 of its namespace (its /proc/1/cmdline is its own command; in
// POD mode it is the stage1's init), still stops (as pid 1 it ignores
// SIGTERM, which the stop's timeout turns into SIGKILL) and still
// records its exit status; a sandbox in the host's IPC namespace shows
// its containers, and the commands exec'd into them, a SysV shared
// memory segment made on the host, which a sandbox of its own does not.
func TestCRINamespaceModes(t *testing.T) {
	h := newCRIHarness(t)
	sandbox := func(name string, nsOptions map[string]any) (string, string) {
		t.Helper()
		return h.runPod(name, map[string]any{"linux": map[string]any{"security_context": map[string]any{"namespace_options": nsOptions}}})
	}
	container := func(podID, podCfg, name string, pidMode int, command ...string) string {
		t.Helper()
		return h.startContainer(podID, podCfg, name, map[string]any{
			"command": command,
			"linux":   map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"pid": pidMode}}},
		})
	}
	// execUntil runs cmd in the container until its output holds want
	// (the container's process may not have exec'd yet).
	execUntil := func(id, want string, cmd ...string) string {
		t.Helper()
		var out string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			out, _ = h.crictl(true, append([]string{"exec", "--sync", id}, cmd...)...)
			if strings.Contains(out, want) || time.Now().After(deadline) {
				return out
			}
		}
	}
	// PID modes: CONTAINER (1) makes the container's process pid 1,
	// POD (0) keeps the stage1's init there.
	podID, podCfg := sandbox("pidmodes", map[string]any{"network": 2, "pid": 1})
	pid1 := container(podID, podCfg, "pid1", 1, "/bin/sleep", "300")
	if out := execUntil(pid1, "sleep", "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "/bin/sleep\x00300") {
		t.Fatalf("CONTAINER mode: /proc/1/cmdline is %q, want the container's /bin/sleep 300", out)
	}
	notPID1 := container(podID, podCfg, "notpid1", 0, "/bin/sleep", "301")
	execUntil(notPID1, "301", "ps")
	if out, _ := h.crictl(true, "exec", "--sync", notPID1, "cat", "/proc/1/cmdline"); strings.Contains(out, "sleep") {
		t.Errorf("POD mode: /proc/1/cmdline is %q, want the stage1's init", out)
	}
	// sleep as pid 1 has no SIGTERM handler: the stop's timeout kills it.
	start := time.Now()
	h.crictl(true, "stop", "--timeout", "2", pid1)
	if st := h.containerStatus(pid1); st.State != "CONTAINER_EXITED" || st.ExitCode != 137 {
		t.Errorf("pid 1 container after stop: %+v, want exited with 137 (SIGKILL)", st)
	}
	t.Logf("stop of a pid 1 that ignores SIGTERM took %v", time.Since(start))
	// Its exit status, when it exits on its own.
	exits := container(podID, podCfg, "exits", 1, "/bin/sh", "-c", "sleep 1; exit 7")
	if st := h.waitExited(exits); st.ExitCode != 7 {
		t.Errorf("pid 1 container that exits 7: %+v", st)
	}
	h.crictl(true, "stopp", podID)
	h.crictl(true, "rmp", podID)

	// IPC: a segment the host makes, seen only in the host's namespace.
	out, err := exec.Command("ipcmk", "-M", "4096").Output()
	if err != nil {
		t.Fatalf("ipcmk: %v", err)
	}
	shmID := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Shared memory id:"))
	t.Cleanup(func() { _ = exec.Command("ipcrm", "-m", shmID).Run() }) //nolint:gosec // G204: the id ipcmk printed
	hostNS, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ipc  int
		host bool
	}{
		{name: "ipc-host", ipc: 2, host: true},
		{name: "ipc-pod", ipc: 0},
	} {
		podID, podCfg := sandbox(tc.name, map[string]any{"network": 2, "ipc": tc.ipc})
		id := container(podID, podCfg, tc.name+"-ctr", 1, "/bin/sleep", "300")
		execUntil(id, "sleep", "cat", "/proc/1/cmdline")
		shm, _ := h.crictl(true, "exec", "--sync", id, "cat", "/proc/sysvipc/shm")
		seen := false
		for _, l := range strings.Split(shm, "\n")[1:] {
			if f := strings.Fields(l); len(f) > 1 && f[1] == shmID {
				seen = true
			}
		}
		if seen != tc.host {
			t.Errorf("%s: host segment %s seen %v, want %v:\n%s", tc.name, shmID, seen, tc.host, shm)
		}
		ns, _ := h.crictl(true, "exec", "--sync", id, "readlink", "/proc/self/ns/ipc")
		if (strings.TrimSpace(ns) == hostNS) != tc.host {
			t.Errorf("%s: exec'd command's IPC namespace %s, the host's %s", tc.name, strings.TrimSpace(ns), hostNS)
		}
		h.crictl(true, "stopp", podID)
		h.crictl(true, "rmp", podID)
	}
	if list := h.e.ok("list", "--no-legend").stdout; strings.TrimSpace(list) != "" {
		t.Fatalf("pods left after rmp:\n%s", list)
	}
}
