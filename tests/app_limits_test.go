//go:build functional && nspawn

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAppAddWithLimits: an app added to a running mutable pod with
// --memory and --cpu-shares gets its own cgroup, on a v1 (hybrid) host
// made by the stage1's app/add host-side as run makes a run-time app's:
// the app and a command entered into it see the limit, and app rm
// removes the cgroup.
func TestAppAddWithLimits(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		t.Skipf("no v1 memory hierarchy here (%v): the unified case is the vm-test suite's", err)
	}
	e := newNetEnv(t)
	p := startSandbox(t, e, "--net=host")
	e.ok("--insecure-options=image", "app", "add", p.uuid, busybox(t), "--name=limited", "--memory=32Mi", "--cpu-shares=512",
		"--exec=/bin/sh", "--", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; exec sleep 600")
	e.ok("app", "start", p.uuid, "--app=limited")
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = e.ok("logs", "--app=limited", p.uuid).stdout
		if strings.TrimSpace(got) != "" {
			break
		}
	}
	if !strings.Contains(got, "33554432") {
		t.Fatalf("the added app's memory limit reads %q, want 33554432", got)
	}
	r := e.ok("app", "exec", p.uuid, "--app=limited", "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
	if strings.TrimSpace(r.stdout) != "33554432" {
		t.Fatalf("a command entered into the app reads the limit %q, want 33554432", r.stdout)
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/*/nscn/" + p.uuid + "/limited")
	more, _ := filepath.Glob("/sys/fs/cgroup/*/nscn/" + p.uuid + "/limited")
	if dirs = append(dirs, more...); len(dirs) == 0 {
		t.Fatalf("no cgroup nscn/%s/limited on the host", p.uuid)
	}
	e.ok("app", "rm", p.uuid, "--app=limited")
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("app rm left the app's cgroup %s", d)
		}
	}
	e.ok("stop", p.uuid)
	if err := p.wait(); err != nil {
		t.Fatalf("app sandbox after stop: %v", err)
	}
	assertPodsGone(t, e)
}
