//go:build functional

package registry

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The harness of the CRI tests: `nscn cri` started on an env's
// directories (criServer), crictl run against it, and, for the tests that
// run pods, a registry holding the greet image that the server has
// pulled (criHarness), sandboxes and containers made from configs, and
// the check that nothing of a removed sandbox is left.

// criServer is one `nscn cri` process of an env, stopped (SIGTERM) when
// the test ends.
type criServer struct {
	t      *testing.T
	e      *env
	socket string
	cmd    *exec.Cmd
	log    *os.File
}

// crictlBin is crictl from the cri-tools module (make builds it).
func crictlBin(t *testing.T) string { return mustEnv(t, "NSCN_CRICTL") }

// teamEnv is an installation that trusts reg's test CA, and the tags of
// its team/ repositories (registries.d), as a kubelet pulls by tag.
func teamEnv(t *testing.T, reg *registry) *env {
	t.Helper()
	e := newEnv(t)
	e.extraEnv = append(e.extraEnv, "SSL_CERT_FILE="+reg.ca)
	writeJSON(t, filepath.Join(e.local, "registries.d", "team.json"), map[string]any{
		"nscnKind": "registryTrust", "nscnVersion": "v1",
		"repositories": []string{reg.host + "/team"}, "acceptTags": true,
	})
	return e
}

// collectPods stops and collects e's pods when the test ends, until none
// is left, so that a failed test leaves no pod behind, nor its network
// (an address or a forwarded port that a later test would hit first).
func collectPods(t *testing.T, e *env) {
	t.Helper()
	t.Cleanup(func() {
		running, _ := filepath.Glob(filepath.Join(e.dir, "pods", "run", "*"))
		for _, p := range running {
			_ = e.run("stop", "--force", filepath.Base(p))
		}
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			_ = e.run("gc", "--grace-period=0s")
			if left, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(left) == 0 {
				return
			}
		}
		t.Errorf("pods left under %s", e.dir)
	})
}

// startCRI starts nscn cri with e's directories, waits for its socket and
// checks that it removes it again on SIGTERM.
func startCRI(t *testing.T, e *env, socket string, globalFlags ...string) *criServer {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(t.TempDir(), "cri.log"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.cmd(context.Background(), append(globalFlags, "cri", "--listen=unix://"+socket)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &criServer{t: t, e: e, socket: socket, cmd: cmd, log: logf}
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nscn cri did not listen on %s:\n%s", socket, s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := os.Stat(socket)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", socket, err, st.Mode().Perm())
	}
	return s
}

func (s *criServer) output() string {
	b, _ := os.ReadFile(s.log.Name())
	return string(b)
}

// stop sends SIGTERM and waits: the server must exit 0 and remove its
// socket.
func (s *criServer) stop() {
	if s.cmd == nil {
		return
	}
	cmd := s.cmd
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("nscn cri exited with %v after SIGTERM:\n%s", err, s.output())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		s.t.Errorf("nscn cri did not stop on SIGTERM:\n%s", s.output())
	}
	if _, err := os.Lstat(s.socket); err == nil {
		s.t.Errorf("nscn cri left its socket %s", s.socket)
	}
}

// crictl runs crictl against the server and returns stdout; ok says
// whether it must succeed.
func (s *criServer) crictl(ok bool, args ...string) (string, string) {
	s.t.Helper()
	ep := "unix://" + s.socket
	all := append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "60s"}, args...)
	cmd := exec.Command(crictlBin(s.t), all...) //nolint:gosec // G204: the suite runs crictl against the server it started
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ok && err != nil {
		s.t.Fatalf("crictl %v: %v\n%s\n%s\nserver:\n%s", args, err, out.String(), errb.String(), s.output())
	}
	if !ok && err == nil {
		s.t.Fatalf("crictl %v succeeded, want a failure:\n%s", args, out.String())
	}
	return out.String(), errb.String()
}

// crictlCmd is crictl against the server's runtime endpoint, for the
// tests that drive its standard streams themselves (attach, exec -i,
// port-forward); it ends with ctx.
func (s *criServer) crictlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, crictlBin(s.t), append([]string{"--runtime-endpoint", "unix://" + s.socket}, args...)...) //nolint:gosec // G204: crictl against the test's server
}

// criHarness is a CRI test that runs pods: a TLS registry holding the
// greet image (team/greet:v1), an installation that trusts its team/
// tags, nscn cri serving it with the image pulled, and the test's pods
// collected when it ends.
type criHarness struct {
	*criServer
	reg *registry
	// image is the greet image's reference, pulled.
	image string
	// dir holds the sandbox and container configs.
	dir string
}

// newCRIHarness sets a CRI test up.
func newCRIHarness(t *testing.T) *criHarness {
	t.Helper()
	reg := startRegistry(t, registryOpts{tls: true})
	reg.push("team/greet:v1", greetImage(t))
	e := teamEnv(t, reg)
	s := startCRI(t, e, filepath.Join(t.TempDir(), "cri.sock"))
	collectPods(t, e)
	h := &criHarness{criServer: s, reg: reg, image: reg.host + "/team/greet:v1", dir: t.TempDir()}
	s.crictl(true, "pull", h.image)
	return h
}

// runPod writes the config of a sandbox named name in the default
// namespace (uid "uid-"+name), with the keys of more, and runs it with
// crictl runp and its flags. It returns the sandbox's ID and its
// config's path, which a container's create needs.
func (h *criHarness) runPod(name string, more map[string]any, flags ...string) (podID, podCfg string) {
	h.t.Helper()
	cfg := map[string]any{"metadata": map[string]any{"name": name, "namespace": "default", "uid": "uid-" + name, "attempt": 0}}
	maps.Copy(cfg, more)
	podCfg = filepath.Join(h.dir, "pod-"+name+".json")
	writeJSON(h.t, podCfg, cfg)
	out, _ := h.crictl(true, append(append([]string{"runp"}, flags...), podCfg)...)
	podID = strings.TrimSpace(out)
	if len(podID) != 32 {
		h.t.Fatalf("runp printed %q, want a sandbox ID", out)
	}
	return podID, podCfg
}

// containerConfig writes the config of a container named name, of the
// greet image unless more names another, with the keys of more, and
// returns its path.
func (h *criHarness) containerConfig(name string, more map[string]any) string {
	h.t.Helper()
	cfg := map[string]any{"metadata": map[string]any{"name": name}, "image": map[string]any{"image": h.image}}
	maps.Copy(cfg, more)
	p := filepath.Join(h.dir, "ctr-"+name+".json")
	writeJSON(h.t, p, cfg)
	return p
}

// createContainer creates the container of containerConfig in sandbox
// podID and returns its ID.
func (h *criHarness) createContainer(podID, podCfg, name string, more map[string]any) string {
	h.t.Helper()
	out, _ := h.crictl(true, "create", podID, h.containerConfig(name, more), podCfg)
	return strings.TrimSpace(out)
}

// startContainer creates the container and starts it.
func (h *criHarness) startContainer(podID, podCfg, name string, more map[string]any) string {
	h.t.Helper()
	id := h.createContainer(podID, podCfg, name, more)
	h.crictl(true, "start", id)
	return id
}

// ctrStatus is what crictl inspect says of a container's state.
type ctrStatus struct {
	State    string `json:"state"`
	ExitCode int    `json:"exitCode"`
	Reason   string `json:"reason"`
}

// containerStatus is crictl inspect's status of container id.
func (h *criHarness) containerStatus(id string) ctrStatus {
	h.t.Helper()
	out, _ := h.crictl(true, "inspect", "-o", "json", id)
	var cs struct {
		Status ctrStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		h.t.Fatalf("crictl inspect %s: %v\n%s", id, err, out)
	}
	return cs.Status
}

// waitExited waits until container id has exited and returns its
// status.
func (h *criHarness) waitExited(id string) ctrStatus {
	h.t.Helper()
	var st ctrStatus
	waitUntil(h.t, 30*time.Second, func() bool {
		st = h.containerStatus(id)
		return st.State == "CONTAINER_EXITED"
	})
	return st
}

// removeContainers removes the containers ids, the sandboxes' last: no
// container may be left.
func (h *criHarness) removeContainers(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		h.crictl(true, "rm", id)
	}
	if out, _ := h.crictl(true, "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		h.t.Fatalf("containers left after rm: %q", out)
	}
}

// restart stops the server and starts another on its socket.
func (h *criHarness) restart() {
	h.t.Helper()
	h.stop()
	h.criServer = startCRI(h.t, h.e, h.socket)
}

// removePod stops and removes sandbox podID, whose containers are
// removed, and checks that nothing of it is left: no sandbox, no pod, no
// mount under the installation's directory.
func (h *criHarness) removePod(podID string) {
	h.t.Helper()
	h.crictl(true, "stopp", podID)
	h.crictl(true, "rmp", podID)
	if out, _ := h.crictl(true, "pods", "-q"); strings.TrimSpace(out) != "" {
		h.t.Fatalf("sandboxes left after rmp: %q", out)
	}
	if list := h.e.ok("list", "--no-legend").stdout; strings.TrimSpace(list) != "" {
		h.t.Fatalf("pods left after rmp:\n%s", list)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		h.t.Fatal(err)
	}
	if strings.Contains(string(mounts), h.e.dir) {
		h.t.Fatalf("mounts left under %s:\n%s", h.e.dir, mounts)
	}
}
