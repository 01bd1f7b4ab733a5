//go:build functional

package packaging

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the test with make package-test", name)
	}
	return v
}

// run runs a host command and returns its combined output.
func run(ctx context.Context, t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestLintian runs lintian on the packages at its default level: no error.
func TestLintian(t *testing.T) {
	testutil.RequiresRoot(t)
	lintian := testutil.RequiresCommand(t, "lintian")
	changes, err := filepath.Glob(filepath.Join(mustEnv(t, "NSCN_DEB_DIR"), "*.changes"))
	if err != nil || len(changes) != 1 {
		t.Fatalf("want one .changes file in NSCN_DEB_DIR, got %v (%v)", changes, err)
	}
	out, err := exec.CommandContext(t.Context(), lintian, "--fail-on", "error", changes[0]).CombinedOutput() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	t.Logf("lintian:\n%s", out)
	if err != nil {
		t.Fatalf("lintian: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "E: ") {
			t.Errorf("lintian error: %s", strings.TrimSpace(line))
		}
	}
}

// root is the installed Debian root.
type root struct {
	dir string
}

// newRoot makes a fresh Debian 12 root with the packages installed by
// dpkg -i, and the test images copied to /root/images.
func newRoot(t *testing.T) *root {
	t.Helper()
	testutil.RequiresRoot(t)
	nspawn := testutil.RequiresCommand(t, "systemd-nspawn")
	testutil.RequiresCommand(t, "debootstrap")
	cache := mustEnv(t, "NSCN_ROOT_CACHE")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	// Beside the cache, not in /tmp: the root is a few hundred MB.
	dir, err := os.MkdirTemp(cache, "root-") //nolint:usetesting // t.TempDir is in /tmp, which may be a small tmpfs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the root: %v", err)
		}
	})
	start := time.Now()
	run(t.Context(), t, mustEnv(t, "NSCN_ROOT_SCRIPT"), cache, dir)
	t.Logf("root ready in %s", time.Since(start).Round(time.Millisecond))

	debs, err := filepath.Glob(filepath.Join(mustEnv(t, "NSCN_DEB_DIR"), "*.deb"))
	if err != nil || len(debs) != 4 {
		t.Fatalf("want the four packages in NSCN_DEB_DIR, got %v (%v)", debs, err)
	}
	// Not /tmp: systemd-nspawn mounts a tmpfs there.
	in := []string{}
	for _, d := range debs {
		if strings.HasPrefix(filepath.Base(d), "nscn-stage1-kvm_") {
			// It depends on qemu-system-x86, which the minimal root
			// lacks (dpkg -i installs no dependencies): its contents
			// and dependencies are checked instead.
			checkKvmDeb(t, d)
			continue
		}
		copyFile(t, d, filepath.Join(dir, "var/tmp/debs", filepath.Base(d)))
		in = append(in, "/var/tmp/debs/"+filepath.Base(d))
	}
	copyFile(t, filepath.Join(mustEnv(t, "NSCN_IMAGES"), "busybox.aci"), filepath.Join(dir, "root/images/busybox.aci"))
	// dpkg in the root, as in a container of it: postinst runs
	// systemd-sysusers and systemd-tmpfiles and enables the units;
	// systemd is not running there, so nothing is started.
	out := run(t.Context(), t, nspawn, append([]string{
		"--quiet", "--register=no", "--keep-unit", "--private-network",
		"-D", dir, "--", "dpkg", "-i",
	}, in...)...)
	t.Logf("dpkg -i:\n%s", out)
	return &root{dir: dir}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from) //nolint:gosec // G304: the test's own inputs
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil { //nolint:gosec // G703: a path under the test's own root
		t.Fatal(err)
	}
}

// booted is the root booted by systemd-nspawn --boot.
type booted struct {
	root *root
	pid1 int // the container's systemd, as the host sees it
	mu   sync.Mutex
	log  bytes.Buffer
}

// boot boots the root with systemd-nspawn and waits until its systemd
// reports the system running (or degraded, with the failed units logged).
func (r *root) boot(t *testing.T) *booted {
	t.Helper()
	nspawn := testutil.RequiresCommand(t, "systemd-nspawn")
	b := &booted{root: r}
	ctx, cancel := context.WithCancel(context.Background())
	// No D-Bus and no systemd on the host: no registration, no scope.
	// Its own network namespace: the metadata service's port does not
	// meet the host's.
	args := []string{"--boot", "--register=no", "--keep-unit", "--private-network", "--machine=nscn-pkgtest", "--console=pipe", "-D", r.dir}
	cmd := exec.CommandContext(ctx, nspawn, args...) //nolint:gosec // G204: a fixed tool, argv built by the test
	cmd.Stdout = lockedWriter{b}
	cmd.Stderr = lockedWriter{b}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // systemd-nspawn powers the container off
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("systemd-nspawn --boot: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("console of the booted root:\n%s", b.console())
		}
	})
	deadline := time.Now().Add(4 * time.Minute)
	for b.pid1 == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no pid 1 under systemd-nspawn %d; console:\n%s", cmd.Process.Pid, b.console())
		}
		time.Sleep(200 * time.Millisecond)
		b.pid1 = containerInit(cmd.Process.Pid)
	}
	for {
		out, _ := b.exec(t.Context(), "systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		if state == "running" || state == "degraded" {
			if state == "degraded" {
				failed, _ := b.exec(t.Context(), "systemctl", "--failed", "--no-legend")
				t.Logf("the root booted degraded: %s", failed)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the root did not boot (state %q); console:\n%s", state, b.console())
		}
		time.Sleep(500 * time.Millisecond)
	}
	return b
}

type lockedWriter struct{ b *booted }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.log.Write(p)
}

func (b *booted) console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// containerInit returns the pid of the process under parent that is pid 1
// of its own pid namespace, or 0.
func containerInit(parent int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		var nspid []string
		ppid := 0
		for line := range strings.Lines(string(st)) {
			if f, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = strings.Fields(f)
			}
			if f, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(f))
			}
		}
		if len(nspid) < 2 || nspid[len(nspid)-1] != "1" {
			continue
		}
		// systemd-nspawn forks once before the container's init.
		for p, hops := ppid, 0; p > 1 && hops < 3; hops++ {
			if p == parent {
				return pid
			}
			p = parentOf(p)
		}
	}
	return 0
}

func parentOf(pid int) int {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(st)) {
		if f, ok := strings.CutPrefix(line, "PPid:"); ok {
			p, _ := strconv.Atoi(strings.TrimSpace(f))
			return p
		}
	}
	return 0
}

// exec runs a command in the booted root's namespaces and root directory,
// and returns its combined output.
func (b *booted) exec(ctx context.Context, args ...string) (string, error) {
	ns := []string{"--target", strconv.Itoa(b.pid1), "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd", "--"}
	cmd := exec.CommandContext(ctx, "nsenter", append(ns, args...)...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (b *booted) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, err := b.exec(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unitProps reads properties of a unit.
func (b *booted) unitProps(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := b.ok(t, "systemctl", "show", "-p", strings.Join(props, ","), unit)
	m := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		m[k] = v
	}
	return m
}

// TestInstalledTree checks what dpkg -i left in the root, before it boots:
// the files where the packages put them, the nscn group, the directories
// of tmpfiles.d, and a stage1 lookup that finds the packaged images.
func TestInstalledTree(t *testing.T) {
	r := newRoot(t)
	for _, p := range []string{
		"usr/bin/nscn",
		"usr/lib/nscn/nscn-grpc",
		"usr/lib/nscn/nscn-fetch",
		"usr/lib/nscn/stage1-images/stage1-nspawn.aci",
		"usr/lib/nscn/stage1-images/stage1-fly.aci",
		"usr/share/man/man1/nscn.1.gz",
		"usr/share/man/man1/nscn-run.1.gz",
		"usr/share/bash-completion/completions/nscn",
		"usr/share/zsh/vendor-completions/_nscn",
		"lib/systemd/system/nscn-gc.service",
		"lib/systemd/system/nscn-gc.timer",
		"lib/systemd/system/nscn-metadata.socket",
		"lib/systemd/system/nscn-metadata.service",
		"usr/lib/tmpfiles.d/nscn.conf",
		"usr/lib/sysusers.d/nscn.conf",
		// Enabled by the postinst (deb-systemd-helper).
		"etc/systemd/system/timers.target.wants/nscn-gc.timer",
		"etc/systemd/system/sockets.target.wants/nscn-metadata.socket",
	} {
		if _, err := os.Lstat(filepath.Join(r.dir, p)); err != nil {
			t.Errorf("installed tree: %v", err)
		}
	}
	group, err := os.ReadFile(filepath.Join(r.dir, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^nscn:x:(\d+):`).FindSubmatch(group)
	if m == nil {
		t.Fatalf("no nscn group in /etc/group:\n%s", group)
	}
	st, err := os.Stat(filepath.Join(r.dir, "var/lib/nscn"))
	if err != nil {
		t.Fatalf("tmpfiles.d did not make the data dir: %v", err)
	}
	gid, _ := strconv.Atoi(string(m[1]))
	if sys := st.Sys().(*syscall.Stat_t); st.Mode().Perm() != 0o750 || int(sys.Gid) != gid || sys.Uid != 0 {
		t.Errorf("/var/lib/nscn: mode %v uid %d gid %d, want 0750 root:nscn (gid %d)", st.Mode().Perm(), sys.Uid, sys.Gid, gid)
	}
	// The compiled-in image dir is the packages': nscn config names the
	// default stage1 there, not beside /usr/bin/nscn. nscn hands config
	// to the packaged nscn-fetch (it reads the trusted keys), found in the
	// compiled-in directory.
	out := run(t.Context(), t, "chroot", r.dir, "/usr/bin/nscn", "config")
	if !strings.Contains(out, `"/usr/lib/nscn/stage1-images/stage1-nspawn.aci"`) {
		t.Errorf("nscn config does not find the packaged default stage1:\n%s", out)
	}
	// nscn hands its gRPC services to the packaged nscn-grpc, found in
	// the compiled-in directory (it is not beside /usr/bin/nscn).
	out = run(t.Context(), t, "chroot", r.dir, "/usr/bin/nscn", "cri", "--help")
	if !strings.Contains(out, "--listen") {
		t.Errorf("nscn cri --help, from nscn-grpc, does not show --listen:\n%s", out)
	}
}

// TestBooted boots the installed root and drives nscn through its units.
func TestBooted(t *testing.T) {
	r := newRoot(t)
	b := r.boot(t)

	t.Run("timer runs gc at boot", func(t *testing.T) {
		if got := strings.TrimSpace(b.ok(t, "systemctl", "is-enabled", "nscn-gc.timer")); got != "enabled" {
			t.Fatalf("nscn-gc.timer is %s, want enabled", got)
		}
		// OnActiveSec=0s: the timer starts the service once at boot.
		deadline := time.Now().Add(time.Minute)
		for {
			p := b.unitProps(t, "nscn-gc.service", "ExecMainExitTimestampMonotonic", "Result", "ExecMainStatus")
			if p["ExecMainExitTimestampMonotonic"] != "0" && p["ExecMainExitTimestampMonotonic"] != "" {
				if p["Result"] != "success" || p["ExecMainStatus"] != "0" {
					log, _ := b.exec(t.Context(), "journalctl", "--no-pager", "-u", "nscn-gc.service")
					t.Fatalf("nscn-gc.service from the timer: %v\n%s", p, log)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the timer did not run nscn-gc.service: %v", p)
			}
			time.Sleep(time.Second)
		}
	})

	t.Run("metadata service by socket activation", func(t *testing.T) {
		if got := strings.TrimSpace(b.ok(t, "systemctl", "is-active", "nscn-metadata.socket")); got != "active" {
			t.Fatalf("nscn-metadata.socket is %s", got)
		}
		if got, _ := b.exec(t.Context(), "systemctl", "is-active", "nscn-metadata.service"); strings.TrimSpace(got) != "inactive" {
			t.Fatalf("nscn-metadata.service is %s before any connection (no pod has run yet), want inactive", strings.TrimSpace(got))
		}
		// The registration API's ping, through the socket systemd holds,
		// reached from the host through pid 1's root.
		sock := fmt.Sprintf("/proc/%d/root/run/nscn/metadata-svc.sock", b.pid1)
		c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://mds/v1/ping", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("ping the metadata service: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("ping: %s, want 204", resp.Status)
		}
		if got := strings.TrimSpace(b.ok(t, "systemctl", "is-active", "nscn-metadata.service")); got != "active" {
			t.Fatalf("nscn-metadata.service is %s after the connection", got)
		}
		// It took the socket from systemd rather than binding its own.
		log := b.ok(t, "journalctl", "--no-pager", "-u", "nscn-metadata.service")
		if !strings.Contains(log, "socket-activated") {
			t.Fatalf("the service did not report socket-activated listeners:\n%s", log)
		}
	})

	var uuid string
	t.Run("fly pod", func(t *testing.T) {
		// The pod runs as a transient service of the booted systemd.
		out := b.ok(t, "systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--",
			"/usr/bin/nscn", "--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci",
			"/root/images/busybox.aci", "--exec=/bin/sh", "--", "-c", "echo fly pod ran in packaged nscn")
		if !strings.Contains(out, "fly pod ran in packaged nscn") {
			t.Fatalf("the fly pod's output is missing:\n%s", out)
		}
		list := b.ok(t, "/usr/bin/nscn", "list", "--no-legend", "--full")
		f := strings.Fields(list)
		if len(f) == 0 || !strings.Contains(list, "exited") {
			t.Fatalf("nscn list after the pod:\n%s", list)
		}
		uuid = f[0]
	})

	t.Run("gc by the timer's service", func(t *testing.T) {
		if uuid == "" {
			t.Skip("no pod to collect")
		}
		dropIn := filepath.Join(r.dir, "etc/systemd/system/nscn-gc.service.d/grace.conf")
		if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dropIn, []byte("[Service]\nEnvironment=GRACE_PERIOD=0s\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		b.ok(t, "systemctl", "daemon-reload")
		// One run marks the exited pod and, the grace period being 0s,
		// sweeps it; a second run is allowed for a mark that lands on the
		// same instant as the sweep's clock.
		pods := filepath.Join(r.dir, "var/lib/nscn/pods")
		for i := 0; i < 2 && podDirExists(t, pods, uuid); i++ {
			b.ok(t, "systemctl", "start", "nscn-gc.service")
		}
		if podDirExists(t, pods, uuid) {
			log, _ := b.exec(t.Context(), "journalctl", "--no-pager", "-u", "nscn-gc.service")
			t.Fatalf("pod %s is still there after nscn-gc.service ran\n%s", uuid, log)
		}
		if list := b.ok(t, "/usr/bin/nscn", "list", "--no-legend"); strings.TrimSpace(list) != "" {
			t.Fatalf("nscn list after gc:\n%s", list)
		}
		// The service did it, as its journal says.
		log := b.ok(t, "journalctl", "--no-pager", "-u", "nscn-gc.service")
		if !strings.Contains(log, "removed pod "+uuid) {
			t.Fatalf("nscn-gc.service's journal does not say it removed pod %s:\n%s", uuid, log)
		}
	})

	t.Run("nspawn pod in a Type=notify unit", func(t *testing.T) {
		nspawnPodNotify(t, b)
	})
}

// podDirExists says whether the pod's directory is in any state directory
// under podsDir (run, exited-garbage, garbage, …).
func podDirExists(t *testing.T, podsDir, uuid string) bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(podsDir, "*", uuid))
	if err != nil {
		t.Fatal(err)
	}
	return len(m) > 0
}

// nspawnPodNotify runs an nspawn-flavor pod as a Type=notify transient
// service of the booted root: systemd-run returns only once the unit has
// started, which for Type=notify is when READY=1 arrived from nscn run's
// process (stage0 execs the stage1, which passes systemd-nspawn's
// readiness on). The pod is nested in the nspawn container of the root;
// Delegate=yes gives its systemd-nspawn the unit's cgroup subtree.
func nspawnPodNotify(t *testing.T, b *booted) {
	t.Helper()
	const unit = "nscn-notify-pod"
	out, err := b.exec(t.Context(), "systemd-run", "--unit="+unit,
		"-p", "Type=notify", "-p", "Delegate=yes", "-p", "KillMode=mixed", "-p", "TimeoutStartSec=180",
		"--", "/usr/bin/nscn", "--insecure-options=image", "run", "--net=host",
		"/root/images/busybox.aci", "--exec=/bin/sh", "--", "-c", "sleep 600")
	if err != nil {
		log, _ := b.exec(t.Context(), "journalctl", "--no-pager", "-u", unit)
		t.Fatalf("start the pod's unit: %v\n%s\n%s", err, out, log)
	}
	p := b.unitProps(t, unit, "ActiveState", "SubState", "Type", "MainPID")
	if p["ActiveState"] != "active" || p["SubState"] != "running" || p["Type"] != "notify" {
		t.Fatalf("the pod's unit after start: %v", p)
	}
	// Ready by systemd's account and by nscn's own.
	var uuid string
	for line := range strings.Lines(b.ok(t, "/usr/bin/nscn", "list", "--no-legend", "--full")) {
		if f := strings.Fields(line); len(f) > 3 && strings.Contains(line, "running") {
			uuid = f[0]
		}
	}
	if uuid == "" {
		t.Fatalf("no running pod in nscn list:\n%s", b.ok(t, "/usr/bin/nscn", "list"))
	}
	if st := b.ok(t, "/usr/bin/nscn", "status", uuid); !strings.Contains(st, "ready=true") {
		t.Fatalf("nscn status of the notify pod:\n%s", st)
	}
	// The socket-activated metadata service registered the pod.
	if log := b.ok(t, "journalctl", "--no-pager", "-u", "nscn-metadata.service"); !strings.Contains(log, uuid) {
		t.Errorf("the metadata service's journal does not name pod %s:\n%s", uuid, log)
	}
	// Stopping the unit stops the pod.
	b.ok(t, "systemctl", "stop", unit)
	if st := b.ok(t, "/usr/bin/nscn", "status", uuid); !strings.Contains(st, "state=exited") {
		t.Fatalf("nscn status after systemctl stop:\n%s", st)
	}
}

// checkKvmDeb checks the kvm stage1 package without installing it: its
// image where stage0 looks, and qemu among its dependencies.
func checkKvmDeb(t *testing.T, deb string) {
	t.Helper()
	files := run(t.Context(), t, "dpkg-deb", "--contents", deb)
	if !strings.Contains(files, "./usr/lib/nscn/stage1-images/stage1-kvm.aci") {
		t.Errorf("%s lacks usr/lib/nscn/stage1-images/stage1-kvm.aci:\n%s", deb, files)
	}
	if deps := run(t.Context(), t, "dpkg-deb", "--field", deb, "Depends"); !strings.Contains(deps, "qemu-system-x86") {
		t.Errorf("%s Depends %q, want qemu-system-x86", deb, deps)
	}
}
