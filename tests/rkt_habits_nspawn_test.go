//go:build functional && nspawn

package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/mountplan"
)

// The rkt habits of rkt_habits_test.go that need stage1-nspawn (a pod of
// its own hostname and network), and the pod-running ones again with it.

func TestRktNspawnEtcFiles(t *testing.T) {
	e := newEnv(t)
	script := `readlink /etc/mtab; cat /etc/hostname; grep -c ' / ' /etc/mtab`
	r := e.ok(nspawnRunArgs(t, "--hostname=rkt-habits", busybox(t), "--exec=/bin/sh", "--", "-c", script)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 3 || lines[0] != "../proc/self/mounts" || lines[1] != "rkt-habits" || lines[2] == "0" {
		t.Errorf("/etc/mtab link, /etc/hostname and mounts in /etc/mtab: %q", r.stdout)
	}
	// The default hostname is nscn-UUID, as the docs say.
	r = e.ok(nspawnRunArgs(t, "--uuid-file-save="+filepath.Join(t.TempDir(), "u"), busybox(t), "--exec=/bin/cat", "--", "/etc/hostname")...)
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "nscn-") {
		t.Errorf("default /etc/hostname = %q, want nscn-UUID", r.stdout)
	}
}

func TestRktNspawnStatusNetworks(t *testing.T) {
	e := newNetEnv(t)
	p := startNetPod(t, e, []string{"--net=default"}, "echo ready; sleep 120")
	ip := p.ip(t, e, "default")
	want := "default:ip4=" + ip
	if got := statusMap(t, e, p.uuid)["networks"]; got != want {
		t.Errorf("status networks=%q, want %q", got, want)
	}
	list := e.ok("list").stdout
	if !strings.Contains(strings.SplitN(list, "\n", 2)[0], "NETWORKS") {
		t.Errorf("list has no NETWORKS column:\n%s", list)
	}
	found := false
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, p.uuid[:8]) && strings.HasSuffix(strings.TrimSpace(l), want) {
			found = true
		}
	}
	if !found {
		t.Errorf("list has no row of %s ending in %s:\n%s", p.uuid[:8], want, list)
	}
	js := e.ok("list", "--format=json").stdout
	if !strings.Contains(js, `"netName":"default"`) || !strings.Contains(js, `"ip":"`+ip+`"`) {
		t.Errorf("list --format=json has no network:\n%s", js)
	}
	p.stop(t, e)
	netGC(t, e)
}

func TestRktNspawnRunHabits(t *testing.T) {
	e := newEnv(t)
	// user and group root without /etc/passwd and /etc/group.
	noPasswd := rebuiltBusybox(t, func(t *testing.T, layout string, m map[string]any) {
		for _, f := range []string{"etc/passwd", "etc/group"} {
			if err := os.Remove(filepath.Join(layout, "rootfs", f)); err != nil {
				t.Fatal(err)
			}
		}
		app := m["app"].(map[string]any)
		app["user"], app["group"] = "root", "root"
	})
	r := e.ok(nspawnRunArgs(t, noPasswd, "--exec=/bin/sh", "--", "-c", "echo uid=$(id -u) gid=$(id -g)")...)
	if !strings.Contains(r.stdout, "uid=0 gid=0") {
		t.Errorf("root without /etc/passwd: %q", r.stdout)
	}
	// A mount target through a dangling absolute symlink; a later
	// --mount of a target with a trailing slash replaces the earlier.
	link := rebuiltBusybox(t, func(t *testing.T, layout string, _ map[string]any) {
		if err := os.Symlink("/srv/data", filepath.Join(layout, "rootfs", "data")); err != nil {
			t.Fatal(err)
		}
	})
	one, two := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(two, "f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.ok(nspawnRunArgs(t, "--volume=one,kind=host,source="+one, "--volume=two,kind=host,source="+two,
		"--mount=volume=one,target=/data", link, "--mount=volume=two,target=/data/",
		"--exec=/bin/cat", "--", "/srv/data/f")...)
	if strings.TrimSpace(r.stdout) != "two" {
		t.Errorf("mount through /data -> /srv/data: %q", r.stdout)
	}
	// The exit status outlives the pod's mounts.
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	if r := e.run(nspawnRunArgs(t, "--uuid-file-save="+uuidFile, busybox(t), "--exec=/bin/sh", "--", "-c", "exit 5")...); r.code != 5 {
		t.Fatalf("run: exit %d, want 5\n%s", r.code, r.stderr)
	}
	if err := mountplan.UnmountAll(context.Background(), e.dir); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("status", "--uuid-file="+uuidFile).stdout; !strings.Contains(out, "app-busybox=5\n") {
		t.Errorf("status once the mounts are gone:\n%s", out)
	}
}

// TestRktNspawnOneLogStyle checks the log records of stage0 and
// stage1-nspawn on stderr: one format, each key once, the time only with
// --debug.
func TestRktNspawnOneLogStyle(t *testing.T) {
	e := newEnv(t)
	for _, debug := range []bool{false, true} {
		args := nspawnRunArgs(t, busybox(t), "--exec=/bin/true")
		if debug {
			args = append([]string{"--debug"}, args...)
		}
		r := e.ok(args...)
		records, stage1 := 0, 0
		for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			if !strings.Contains(l, "level=") {
				continue // systemd's console, with --debug
			}
			records++
			if strings.Contains(l, "flavor=nspawn") {
				stage1++
			}
			if strings.HasPrefix(l, "time=") != debug {
				t.Errorf("debug %v: record %q", debug, l)
			}
			seen := map[string]bool{}
			for _, f := range strings.Fields(l) {
				k, _, ok := strings.Cut(f, "=")
				if !ok || strings.ContainsAny(k, `"[`) || strings.HasPrefix(k, "-") {
					continue // inside a quoted value
				}
				if seen[k] {
					t.Errorf("key %s twice in %q", k, l)
				}
				seen[k] = true
			}
		}
		if records == 0 || (debug && stage1 == 0) {
			t.Errorf("debug %v: %d records, %d of the stage1:\n%s", debug, records, stage1, r.stderr)
		}
	}
}

func TestRktNspawnNoOverlay(t *testing.T) {
	noOverlayPod(t, newEnv(t), "--net=host", "--stage1-path="+nspawnACI(t))
}

// TestRktNspawnInteractiveFirstByte runs an --interactive pod on a
// terminal (script(1) gives it one) and checks that the app's output is
// the first thing on it: no stray byte before it.
func TestRktNspawnInteractiveFirstByte(t *testing.T) {
	e := newEnv(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) (bsdutils) is not installed")
	}
	e.ok("--insecure-options=image", "fetch", nspawnACI(t), busybox(t)) // progress bars out of the way
	argv := append([]string{nscnBin(t), "--dir", e.dir, "--local-config", e.local, "--system-config", e.system},
		nspawnRunArgs(t, "--interactive", busybox(t), "--exec=/bin/echo", "--", "first")...)
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + a + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, script, "-q", "-c", strings.Join(quoted, " ")+" 2>/dev/null", "/dev/null") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	// A terminal whose input stays open, as a user's does.
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close() }()
	out, err := c.Output()
	if err != nil {
		t.Fatalf("script: %v\n%q", err, out)
	}
	if !strings.HasPrefix(string(out), "first\r\n") {
		t.Errorf("the terminal shows %q, want the app's first line first", out)
	}
}
