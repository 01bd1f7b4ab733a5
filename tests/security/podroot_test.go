//go:build functional

package security

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestNspawnAppEntrypointsStayInThePodRoot: the stage1 rootfs of a
// running nspawn pod is the pod's root, which its own root processes (the
// pod's systemd and helpers, or an app that broke out of its confinement)
// can write. The host-side entrypoints that change it while the pod runs
// or after its end (app/rm, stop --force, run recording a kill) must not
// follow a symlink planted there onto host files. Here the test plants,
// as the pod's root could, symlinks from the stage1 rootfs to host
// directories: app/rm's removal of the app's FIFO directory, stop
// --force's kill marker and run's record of the killed apps' statuses
// must leave those directories as they were.
func TestNspawnAppEntrypointsStayInThePodRoot(t *testing.T) {
	e := newEnv(t)
	uuid := e.start("--insecure-options=image", "app", "sandbox", "--net=host", stage1Flag(t, nspawn))
	root := filepath.Join(e.dir, "pods", "run", uuid, "stage1", "rootfs")
	hostDir := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			p := filepath.Join(d, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("host file\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	plant := func(podPath, target string) {
		t.Helper()
		p := filepath.Join(root, podPath)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := func(what, dir string, want ...string) {
		t.Helper()
		var got []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				got = append(got, rel)
			}
			return nil
		})
		if !slices.Equal(got, want) {
			t.Fatalf("%s: the host directory behind the symlink holds %v, want %v", what, got, want)
		}
	}

	// app/rm: the app's FIFO directory is nscn/io/APP.
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=victim", "--exec=/bin/true")
	io := hostDir("victim/keep")
	plant("nscn/io", io)
	_ = e.run("app", "rm", uuid, "--app=victim")
	unchanged("app rm", io, "victim/keep")

	// stop --force and run's record of the kill: the kill marker in
	// nscn/state, the started app's status in rkt/status.
	if err := os.Remove(filepath.Join(root, "nscn/io")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "nscn/io"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=sleeper", "--exec=/bin/sleep", "--", "600")
	e.ok("app", "start", uuid, "--app=sleeper")
	state, status := hostDir("keep"), hostDir("keep")
	plant("nscn/state", state)
	plant("rkt/status", status)
	e.ok("stop", "--force", uuid)
	e.ok("status", "--wait=60s", uuid)
	unchanged("stop --force", state, "keep")
	unchanged("the kill's status record", status, "keep")
}
