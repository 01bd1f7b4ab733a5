//go:build functional

package security

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMutablePodAppsKeepTheirBoundingSet is class 7 for mutable pods: the
// container of a pod `nscn app sandbox` starts keeps systemd-nspawn's
// whole capability bounding set, since its apps come later with
// capabilities of their own (a CRI container's add_capabilities). An app
// added without capability isolators must still get appc's default set
// alone, and a command entered into it the same, not the container's.
func TestMutablePodAppsKeepTheirBoundingSet(t *testing.T) {
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.cmd(ctx, "--insecure-options=image", "app", "sandbox", "--net=host", stage1Flag(t, nspawn), "--uuid-file-save="+uuidFile)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	var uuid string
	for deadline := time.Now().Add(time.Minute); uuid == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no sandbox after a minute: %s", out.String())
		}
		if b, err := os.ReadFile(uuidFile); err == nil { //nolint:gosec // G304: the test's own temporary file
			uuid = strings.TrimSpace(string(b))
		}
	}
	t.Cleanup(func() {
		_ = e.run("stop", "--force", uuid)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
		_ = e.run("gc", "--grace-period=0s")
	})
	e.ok("status", "--wait-ready=60s", uuid)
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=plain", "--exec=/bin/sleep", "--", "300")
	e.ok("app", "start", uuid, "--app=plain")
	// appc's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
	// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
	// AUDIT_WRITE SETFCAP.
	const defaultSet = "00000000a80425fb"
	var r result
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r = e.run("app", "exec", uuid, "--app=plain", "--", "grep", "^CapBnd:", "/proc/self/status")
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(r.stdout, defaultSet) {
		t.Fatalf("a command entered into an app added without capability isolators has %q, want bounding set %s", r, defaultSet)
	}
	// The app itself (its namespace's pid 1 is the stage1's helper).
	r = e.ok("app", "exec", uuid, "--app=plain", "--", "/bin/sh", "-c",
		`for p in /proc/[0-9]*; do grep -q "^Name:.sleep" $p/status 2>/dev/null && grep ^CapBnd: $p/status; done`)
	if got := strings.TrimSpace(r.stdout); got != "CapBnd:\t"+defaultSet {
		t.Fatalf("the added app's sleep has %q, want bounding set %s", got, defaultSet)
	}
}
