//go:build functional

package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestCRIMountsAndPorts drives the CRI's mounts and port mappings with
// crictl: a sandbox forwarding 127.0.0.1:18084 to its port 8080, and a
// container with a writable host directory, a read-only one reached
// through a symlink (its tmpfs below writable), a recursively read-only
// one (its tmpfs below read-only too), an rslave and a private mount of a
// shared host directory, and an image volume; the web server in the
// container answers on the forwarded port, and once the sandbox is
// removed the port is free again and nothing is left mounted. Image
// volume sub-paths that are symlinks (to "/etc", to many "..") resolve in
// the image, never on the host.
func TestCRIMountsAndPorts(t *testing.T) {
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		t.Skip("the image volume sub-path cases tell the host's /etc by its debian_version")
	}
	h := newCRIHarness(t)
	// An image volume's sub-path is resolved in the image: its symlinks
	// cannot reach the host's files.
	h.reg.push("team/escape:v1", imageOf(t, v1.Config{}, busyboxLayer(t),
		layerOf(t, dir("srv"), symlink("srv/up", "../../../../../../.."), symlink("srv/etc", "/etc"))))
	escape := h.reg.host + "/team/escape:v1"
	h.crictl(true, "pull", escape)

	host := t.TempDir()
	mkdir := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mount := func(src, target, fstype string, flags uintptr) {
		t.Helper()
		if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, target, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	}
	rw := mkdir(filepath.Join(host, "rw"))
	if err := os.WriteFile(filepath.Join(rw, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := mkdir(filepath.Join(host, "ro"))
	mount("none", mkdir(filepath.Join(ro, "tmpfs")), "tmpfs", 0)
	if err := os.Symlink(ro, filepath.Join(host, "ro-link")); err != nil {
		t.Fatal(err)
	}
	rro := mkdir(filepath.Join(host, "rro"))
	mount("none", mkdir(filepath.Join(rro, "tmpfs")), "tmpfs", 0)
	// A shared host directory, as critest makes it, seen rslave and
	// private.
	shared := mkdir(filepath.Join(host, "shared"))
	mount(shared, shared, "", unix.MS_BIND|unix.MS_REC)
	mount("", shared, "", unix.MS_SHARED|unix.MS_REC)
	later := mkdir(filepath.Join(shared, "later"))

	podID, podCfg := h.runPod("mounts", map[string]any{
		"port_mappings": []map[string]any{{"container_port": 8080, "host_port": 18084, "host_ip": "127.0.0.1"}, {"container_port": 9}},
	})
	image := h.image
	ctrID := h.startContainer(podID, podCfg, "web", map[string]any{
		"command": []string{"/bin/sh", "-c", "mkdir -p /www && cat /data/hello > /www/index.html && exec httpd -f -p 8080 -h /www"},
		"mounts": []map[string]any{
			{"container_path": "/data", "host_path": rw},
			{"container_path": "/ro", "host_path": filepath.Join(host, "ro-link"), "readonly": true, "selinux_relabel": true},
			{"container_path": "/rro", "host_path": rro, "readonly": true, "recursive_read_only": true},
			{"container_path": "/slave", "host_path": shared, "propagation": 1},
			{"container_path": "/private", "host_path": shared, "propagation": 0},
			{"container_path": "/img", "image": map[string]any{"image": image}, "readonly": true},
			{"container_path": "/up", "image": map[string]any{"image": escape}, "image_sub_path": "srv/up", "readonly": true},
			{"container_path": "/etc2", "image": map[string]any{"image": escape}, "image_sub_path": "srv/etc", "readonly": true},
		},
	})

	sh := func(ok bool, script string) string {
		t.Helper()
		out, _ := h.crictl(ok, "exec", "--sync", ctrID, "/bin/sh", "-c", script)
		return strings.TrimSpace(out)
	}
	if got := testutil.HTTPGet(t, "http://127.0.0.1:18084/", 10*time.Second); got != "from the host\n" {
		t.Errorf("GET through the mapped port: %q", got)
	}
	sh(true, "echo written > /data/from-ctr")
	if b, err := os.ReadFile(filepath.Join(rw, "from-ctr")); err != nil || string(b) != "written\n" { //nolint:gosec // G304: the test's own directory
		t.Errorf("the container's write in the writable mount: %q, %v", b, err)
	}
	for _, c := range []struct {
		name, script string
		ok           bool
	}{
		{"read-only top", "touch /ro/file", false},
		{"its tmpfs", "touch /ro/tmpfs/file", true},
		{"recursive read-only top", "touch /rro/file", false},
		{"recursive read-only tmpfs", "touch /rro/tmpfs/file", false},
		{"image volume", "test -x /img/bin/sh && cat /img/srv/message", true},
		{"image volume write", "touch /img/file", false},
		{"sub-path up is the image's root", "test -L /up/srv/up && test ! -e /up/etc/debian_version", true},
		{"sub-path /etc is the image's", "test -e /etc2/passwd && test ! -e /etc2/debian_version", true},
	} {
		if _, stderr := h.crictl(c.ok, "exec", "--sync", ctrID, "/bin/sh", "-c", c.script); !c.ok && !strings.Contains(stderr, "Read-only file system") {
			t.Errorf("%s: %q should fail read-only: %s", c.name, c.script, stderr)
		}
	}
	// The pod holds its image volumes' trees: image gc keeps them.
	before, _ := filepath.Glob(filepath.Join(h.e.dir, "cas", "tree", "deps-*"))
	h.e.ok("image", "gc", "--grace-period=0s")
	if after, _ := filepath.Glob(filepath.Join(h.e.dir, "cas", "tree", "deps-*")); len(after) != len(before) || len(before) < 2 {
		t.Errorf("trees before image gc %v, after %v: the pod holds them all", before, after)
	}
	if got := sh(true, "cat /etc2/passwd /up/srv/up/etc/passwd | wc -l"); got == "0" {
		t.Errorf("the image volumes are empty after image gc")
	}
	// Mount propagation from the host, after the container started.
	mount(filepath.Join(rw), later, "", unix.MS_BIND)
	if got := sh(true, "ls /slave/later"); !strings.Contains(got, "hello") {
		t.Errorf("the rslave mount does not show the host's later mount: %q", got)
	}
	if got := sh(true, "ls /private/later"); got != "" {
		t.Errorf("the private mount shows the host's later mount: %q", got)
	}

	out, _ := h.crictl(true, "inspect", "-o", "json", ctrID)
	var cs struct {
		Status struct {
			Mounts []struct {
				ContainerPath string `json:"containerPath"`
				HostPath      string `json:"hostPath"`
				Readonly      bool   `json:"readonly"`
				Propagation   string `json:"propagation"`
			} `json:"mounts"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs.Status.Mounts) != 8 ||
		cs.Status.Mounts[1].HostPath != filepath.Join(host, "ro-link") || !cs.Status.Mounts[1].Readonly ||
		cs.Status.Mounts[3].Propagation != "PROPAGATION_HOST_TO_CONTAINER" {
		t.Errorf("the container's mounts in its status: %v\n%s", err, out)
	}

	// A mount the CRI's rules refuse.
	bad := h.containerConfig("bad", map[string]any{
		"mounts": []map[string]any{{"container_path": "/x", "host_path": rw, "recursive_read_only": true}},
	})
	if _, stderr := h.crictl(false, "create", podID, bad, podCfg); !strings.Contains(stderr, "recursive_read_only needs readonly") {
		t.Errorf("a recursive read-only mount that is not read-only: %s", stderr)
	}

	h.removePod(podID)
	if _, err := os.Stat("/run/nscn/ports/tcp-18084"); err == nil {
		t.Errorf("the port's claim is left after rmp")
	}
}
