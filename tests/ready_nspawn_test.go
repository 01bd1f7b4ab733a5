//go:build functional && nspawn

package tests

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// gatedImage is busybox with an app whose pre-start handler waits until
// the file "open" appears in the volume "gate" (mounted at /gate), and
// whose main process then prints app-started and sleeps.
func gatedImage(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xzf", busybox(t), "-C", dir, "rootfs").CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("unpack busybox: %v\n%s", err, b)
	}
	manifest := `{
  "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/gated",
  "labels": [{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
  "app": {
    "exec": ["/bin/sh", "-c", "echo app-started; exec sleep 300"],
    "user": "0", "group": "0",
    "eventHandlers": [{"name": "pre-start", "exec": ["/bin/sh", "-c",
      "echo pre-start-waiting; while [ ! -e /gate/open ]; do sleep 0.1; done"]}],
    "mountPoints": [{"name": "gate", "path": "/gate"}]
  }
}`
	if err := os.WriteFile(filepath.Join(dir, "manifest"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "gated.aci")
	if b, err := exec.Command(actool(t), "build", "--overwrite", dir, out).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("actool build: %v\n%s", err, b)
	}
	return out
}

// TestNspawnReadiness: a pod is ready once its app has passed its
// pre-start handler and started, not merely once it runs. status says so,
// --wait-ready=1s gives up with a clear message while the handler runs,
// and a bare --wait-ready returns only once the pod's systemd reported
// the app started. nscn run, started as a systemd unit of Type=notify
// would start it, tells its service manager at the same time.
func TestNspawnReadiness(t *testing.T) {
	e := newEnv(t)
	gate := t.TempDir()
	manager := "@nscn-test-notify-" + filepath.Base(gate)
	notified, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: manager, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = notified.Close() }()
	e.extraEnv = append(e.extraEnv, "NOTIFY_SOCKET="+manager)
	p := startPod(t, e, 10*time.Second, []string{"pre-start-waiting"}, nspawnRunArgs(t, "--volume", "gate,kind=host,source="+gate, gatedImage(t))...)
	uuid := p.uuid
	e.extraEnv = e.extraEnv[:len(e.extraEnv)-1]
	readNotification := func(wait time.Duration) (string, error) {
		if err := notified.SetReadDeadline(time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, err := notified.Read(buf)
		return string(buf[:n]), err
	}

	st := statusMap(t, e, uuid)
	if st["state"] != "running" || st["pid"] == "" || st["ready"] != "false" {
		t.Fatalf("status while the pre-start handler runs: %v, want running with a pid, not ready", st)
	}
	start := time.Now()
	r := e.fails("gave up after 1s: the pod runs, but its apps have not all started", "status", "--wait-ready=1s", uuid)
	if r.code != 254 || r.stdout != "" {
		t.Fatalf("status --wait-ready=1s: exit %d, stdout %q; want 254 and nothing", r.code, r.stdout)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("status --wait-ready=1s gave up after %v", d)
	}

	// A waiter from before the gate opens returns only after it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waiter := e.cmd(ctx, "status", "--wait-ready", uuid)
	var out, errb testutil.SyncBuffer
	waiter.Stdout, waiter.Stderr = &out, &errb
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- waiter.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("status --wait-ready returned (%v) before the pre-start handler ended: %s %s", err, out.String(), errb.String())
	case <-time.After(time.Second):
	}
	if msg, err := readNotification(10 * time.Millisecond); err == nil {
		t.Fatalf("run notified its service manager %q before the pod was ready", msg)
	}
	opened := time.Now()
	if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("status --wait-ready: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "state=running\n") || !strings.Contains(out.String(), "ready=true\n") {
		t.Fatalf("status --wait-ready printed:\n%s", out.String())
	}
	fi, err := os.Stat(filepath.Join(podDir(t, e), "ready"))
	if err != nil {
		t.Fatal(err)
	}
	// File times are coarser than the clock: allow them a tick.
	if fi.ModTime().Before(opened.Add(-10 * time.Millisecond)) {
		t.Fatalf("the pod was recorded ready at %v, before the gate opened at %v", fi.ModTime(), opened)
	}
	if st := statusMap(t, e, uuid); st["ready"] != "true" {
		t.Fatalf("status after --wait-ready: %v", st)
	}
	if msg, err := readNotification(10 * time.Second); err != nil || msg != "READY=1" {
		t.Fatalf("run's service manager got %q, %v; want READY=1", msg, err)
	}

	e.ok("stop", uuid)
	var ee *exec.ExitError
	if err := p.wait(); !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("run after stop: %v, want exit 143", err)
	}
	// An exited pod is not ready, and waiting for it fails at once.
	if st := statusMap(t, e, uuid); st["state"] != "exited" || st["ready"] != "" {
		t.Fatalf("status of the exited pod: %v", st)
	}
	e.fails("pod is exited", "status", "--wait-ready", uuid)
	assertPodsGone(t, e)
}

// TestNspawnWaitReadyPodEndsFirst: a pod stopped while its pre-start
// handler runs never becomes ready, and a waiter says so instead of
// waiting for ever.
func TestNspawnWaitReadyPodEndsFirst(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 10*time.Second, []string{"pre-start-waiting"}, nspawnRunArgs(t, "--volume", "gate,kind=host,source="+t.TempDir(), gatedImage(t))...)
	uuid := p.uuid
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waiter := e.cmd(ctx, "status", "--wait-ready", uuid)
	var out, errb testutil.SyncBuffer
	waiter.Stdout, waiter.Stderr = &out, &errb
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	e.ok("stop", uuid)
	err := waiter.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 254 || !strings.Contains(errb.String(), "pod is exited") {
		t.Fatalf("status --wait-ready on a pod stopped before it was ready: %v, stderr %q", err, errb.String())
	}
	_ = p.wait()
	if _, err := os.Stat(filepath.Join(podDir(t, e), "ready")); err == nil {
		t.Fatal("a pod stopped in its pre-start handler was recorded ready")
	}
	assertPodsGone(t, e)
}
