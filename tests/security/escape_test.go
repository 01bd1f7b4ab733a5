//go:build functional

package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChrootEscapeReachesNothing is class 1 of Documentation/security.md:
// an app with appc's default capabilities (CAP_SYS_CHROOT among them)
// breaks out of a chroot and looks for the stage1's entrypoints, the pod
// config, the other apps' roots and the pod's status files. Its root must
// be its own rootfs, entered with pivot_root, so the breakout ends where
// it started. Fly is privileged by design and is not attacked.
func TestChrootEscapeReachesNothing(t *testing.T) {
	e := newEnv(t)
	im := image{name: "example.com/escape", app: app("0", "0",
		"/attack", "escape",
		"stat:/attack", // still in its own root
		"stat:/nscn", "stat:/opt/stage2", "stat:/rkt", "ls:/",
		"write:/nscn/enter=#!/bin/sh\necho PWNED\n",
		"write:/nscn/gc=#!/bin/sh\necho PWNED\n",
		"read:/nscn/pod.json",
		"read:/proc/1/root/nscn/pod.json",
		"ls:/proc/1/root/",
	)}
	r := e.run(runArgs(t, nspawn, im.build(t))...)
	t.Logf("attack output:\n%s", r.stdout)
	if r.code != 0 {
		t.Fatalf("the attacking pod failed: %s", r)
	}
	if !strings.Contains(r.stdout, "ok stat:/attack") {
		t.Fatalf("the attacker did not report its own root: %s", r)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		for _, reached := range []string{"ok stat:/nscn", "ok stat:/opt/stage2", "ok stat:/rkt", "ok write:", "ok read:", "ok ls:/proc/1/root"} {
			if strings.HasPrefix(line, reached) {
				t.Errorf("the app reached the stage1: %s", line)
			}
		}
	}
	// Whatever the app did, the entrypoints stage0 runs are the image's.
	for _, ep := range []string{"nscn/enter", "nscn/gc", "nscn/stop"} {
		b, err := os.ReadFile(filepath.Join(e.podDir(), "stage1", "rootfs", ep)) //nolint:gosec // G304: a file of the test's pod
		if err == nil && strings.Contains(string(b), "PWNED") {
			t.Errorf("the app replaced the pod's %s", ep)
		}
	}
}
