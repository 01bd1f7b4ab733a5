//go:build functional

package security

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEnterUsesRecordedUser is class 3 of Documentation/security.md: an
// app whose user is a path in its rootfs (appc resolves it to the path's
// owner) repoints that path at a root-owned file once it runs. enter must
// run commands as the user the app started as, not as whoever owns the
// path now.
func TestEnterUsesRecordedUser(t *testing.T) {
	e := newEnv(t)
	im := image{
		name: "example.com/repoint",
		app: app("/home/user/me", "/home/user/me", "/bin/sh", "-c",
			"rm -f /home/user/me && ln -s /bin /home/user/me && touch /tmp/repointed && sleep 60"),
		files: []file{{path: "/home/user/me", content: "me", uid: 1000}},
	}
	uuid := e.start(runArgs(t, nspawn, im.build(t))...)
	// The repoint is done before enter looks.
	for i := 0; ; i++ {
		if r := e.run("enter", uuid, "/bin/test", "-e", "/tmp/repointed"); r.code == 0 {
			break
		}
		if i == 100 {
			t.Fatal("the app did not repoint its user")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := e.ok("enter", uuid, "/bin/id", "-u")
	if got := strings.TrimSpace(r.stdout); got != "1000" {
		t.Fatalf("enter ran as uid %s, want the app's 1000", got)
	}
}

// TestEnterClosesCallersDescriptors is class 4: a descriptor the caller
// of nscn enter holds without close-on-exec (a shell's `exec 7</`) must
// not reach the entered command, on either flavor.
func TestEnterClosesCallersDescriptors(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			e := newEnv(t)
			im := image{name: "example.com/fds", app: app("0", "0", "/bin/sleep", "60")}
			uuid := e.start(runArgs(t, f, im.build(t))...)
			probe := filepath.Join(t.TempDir(), "nscn-leak-probe")
			if err := os.Mkdir(probe, 0o755); err != nil {
				t.Fatal(err)
			}
			dir, err := os.Open(probe) //nolint:gosec // G304: the test's own temporary directory
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = dir.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := e.cmd(ctx, "enter", uuid, "/attack", "in", "fds:")
			// fd 9 of nscn, inherited: high enough that no descriptor
			// nscn or the stage1 hands on lands on it.
			c.ExtraFiles = []*os.File{nil, nil, nil, nil, nil, nil, dir}
			out, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("nscn enter: %v\n%s", err, out)
			}
			t.Logf("entered command's descriptors: %s", out)
			if !strings.Contains(string(out), "ok fds:") {
				t.Fatalf("the entered command did not list its descriptors: %s", out)
			}
			if strings.Contains(string(out), "nscn-leak-probe") {
				t.Errorf("the caller's descriptor reached the pod: %s", out)
			}
			// The attacker opens a few itself (the Go runtime's cgroup
			// files, the directory it lists): none is that high.
			for _, fd := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(string(out)), "ok fds:")) {
				n, _, _ := strings.Cut(fd, "->")
				if v, err := strconv.Atoi(n); err == nil && v >= 8 {
					t.Errorf("descriptor %s reached the entered command", fd)
				}
			}
		})
	}
}
