//go:build functional

package security

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKvmAppEntrypointsStayInTheGuestRoot: the guest of a stage1-kvm pod
// can write the stage1 rootfs the host shares with it, and so plant a
// symlink where the app entrypoints later make an app's files. Planted
// here from the host, as the guest's root would through virtio-fs: a
// symlink from the rootfs's I/O directory to a host directory. app add
// must fail without writing there, app rm must not remove anything there,
// and once the symlink is gone the pod takes apps again. stage1-kvm is
// the image beside nscn (make all builds it); one guest boot, seconds
// under TCG.
func TestKvmAppEntrypointsStayInTheGuestRoot(t *testing.T) {
	e := newEnv(t)
	uuid := e.startWithin(150*time.Second, "--insecure-options=image", "app", "sandbox", "--net=none", "--stage1-from-dir=stage1-kvm.aci")
	podDir := filepath.Join(e.dir, "pods", "run", uuid)

	outside := t.TempDir()
	keep := filepath.Join(outside, "victim", "keep")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("host file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ioDir := filepath.Join(podDir, "stage1", "rootfs", "nscn", "io")
	if err := os.RemoveAll(ioDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, ioDir); err != nil {
		t.Fatal(err)
	}
	if r := e.run("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=victim", "--exec=/bin/true"); r.code == 0 {
		t.Fatalf("app add through a planted symlink succeeded:\n%s", r)
	}
	ents, err := os.ReadDir(filepath.Join(outside, "victim"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "keep" {
		t.Fatalf("the host directory behind the symlink changed: %v %v", ents, err)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "host file\n" { //nolint:gosec // G304: the test's file
		t.Fatalf("the host file behind the symlink: %q %v", b, err)
	}
	// The failed add left nothing the pod's next app trips on.
	_ = e.run("app", "rm", uuid, "--app=victim")
	if err := os.Remove(ioDir); err != nil {
		t.Fatal(err)
	}
	e.ok("--insecure-options=image", "app", "add", uuid, busyboxACI(t), "--name=after", "--exec=/bin/true")
	e.ok("app", "rm", uuid, "--app=after")
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("the host file is gone: %v", err)
	}
}
