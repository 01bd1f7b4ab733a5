package entrypoint_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// This file is the root integration test of stage1-fly: it builds the four
// entrypoints, lays pod directories out by hand as stage0 would, and
// checks from inside the app what the app sees.

const (
	podUUID  = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"
	appName  = "app"
	marker   = "fly-marker"
	waitLong = 10 * time.Second
)

// flyBins holds the paths of the built entrypoints.
type flyBins struct{ run, enter, gc, stop string }

func buildFly(t *testing.T) flyBins {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "github.com/nosecone/nscn/stage1-fly/cmd/...") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the fly entrypoints: %v\n%s", err, out)
	}
	return flyBins{
		run: filepath.Join(dir, "run"), enter: filepath.Join(dir, "enter"),
		gc: filepath.Join(dir, "gc"), stop: filepath.Join(dir, "stop"),
	}
}

// staticBusybox returns the host's busybox, which must be statically
// linked to run in a bare chroot.
func staticBusybox(t *testing.T) string {
	t.Helper()
	p := testutil.RequiresCommand(t, "busybox")
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked; install busybox-static", p)
		}
	}
	return p
}

// podSpec describes a test pod.
type podSpec struct {
	app          *types.App
	mounts       []schema.Mount
	volumes      []types.Volume
	readOnlyRoot bool
	extraApps    int
}

func testApp(exec ...string) *types.App {
	return &types.App{Exec: exec, User: "0", Group: "0"}
}

func hash(t *testing.T) types.Hash {
	t.Helper()
	h, err := types.NewHash("sha512-" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	return *h
}

// makePod lays a pod directory out: the pod manifest, the app's rootfs
// (busybox, /etc/passwd, /etc/group, a marker file, /work) and its image
// manifest. It returns the pod directory.
func makePod(t *testing.T, busybox string, spec podSpec) string {
	t.Helper()
	podDir := filepath.Join(t.TempDir(), podUUID)
	pm := schema.BlankPodManifest()
	ra := schema.RuntimeApp{Name: *types.MustACName(appName), Image: schema.RuntimeImage{ID: hash(t)}, App: spec.app, Mounts: spec.mounts, ReadOnlyRootFS: spec.readOnlyRoot}
	pm.Apps = schema.AppList{ra}
	for i := range spec.extraApps {
		extra := ra
		extra.Name = *types.MustACName(fmt.Sprintf("extra%d", i))
		pm.Apps = append(pm.Apps, extra)
	}
	pm.Volumes = spec.volumes
	data, err := json.Marshal(pm)
	if err != nil {
		t.Fatalf("marshal pod manifest: %v", err)
	}
	mustWrite(t, filepath.Join(podDir, stage1abi.PodManifestFile), string(data), 0o644)

	rootfs := filepath.Join(podDir, stage1abi.AppRootfs(appName))
	bb, err := os.ReadFile(busybox) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(rootfs, "bin", "busybox"), string(bb), 0o755)
	for _, tool := range []string{"sh", "echo", "cat", "id", "sleep", "ls", "grep", "touch", "env", "test", "readlink", "stat", "true"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/work:/bin/sh\n", 0o644)
	mustWrite(t, filepath.Join(rootfs, "etc", "group"), "root:x:0:\napp:x:1000:\n", 0o644)
	mustWrite(t, filepath.Join(rootfs, "etc", "hostname-marker"), marker+"\n", 0o644)
	if err := os.MkdirAll(filepath.Join(rootfs, "work"), 0o755); err != nil {
		t.Fatal(err)
	}

	im := schema.BlankImageManifest()
	im.Name = *types.MustACIdentifier("nosecone.dev/test/busybox")
	im.App = spec.app
	data, err = json.Marshal(im)
	if err != nil {
		t.Fatalf("marshal image manifest: %v", err)
	}
	mustWrite(t, filepath.Join(podDir, stage1abi.AppInfoDir(appName), stage1abi.AppManifestFile), string(data), 0o644)
	t.Cleanup(func() { assertNoMounts(t, podDir) })
	return podDir
}

func mustWrite(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil { //nolint:gosec // G703: a file the test made
		t.Fatal(err)
	}
}

// lockPod takes the pod lock as stage0 does: an exclusive flock on an open
// descriptor of the pod directory.
func lockPod(t *testing.T, podDir string) *os.File {
	t.Helper()
	f, err := os.Open(podDir) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("lock pod: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// runCmd prepares the run entrypoint as stage0 execs it: from the pod
// directory, with the lock on fd 3 named by RKT_LOCK_FD.
func runCmd(t *testing.T, bins flyBins, podDir string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	argv := append([]string{"--net=host"}, args...)
	argv = append(argv, podUUID)
	cmd := exec.Command(bins.run, argv...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Dir = podDir
	cmd.Env = []string{stage1abi.EnvLockFD + "=3"}
	cmd.ExtraFiles = []*os.File{lockPod(t, podDir)}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// exitCode runs or waits for cmd and returns its exit status.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return 0
}

// waitFile waits for a non-empty file and returns its content.
func waitFile(t *testing.T, p string) string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 { //nolint:gosec // G304: a file the test made
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %v", p, waitLong)
	return ""
}

// dead reports whether pid is gone or a zombie.
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func waitDead(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !dead(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still alive after %v", what, pid, waitLong)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertNoMounts fails if any mount is left at or under dir.
func assertNoMounts(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	infos, err := mountplan.ParseMountInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.MountPoint == dir || strings.HasPrefix(in.MountPoint, dir+"/") {
			t.Errorf("mount left under the pod directory: %s (%s)", in.MountPoint, in.FSType)
			_ = unix.Unmount(in.MountPoint, unix.MNT_DETACH)
		}
	}
}

// assertOneErrorLine checks fly's failure output: one line, prefixed.
func assertOneErrorLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "stage1-fly: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr = %q, want one line \"stage1-fly: …%s…\"", stderr, want)
	}
}

func hostVolume(name, source string, readOnly bool) types.Volume {
	v := types.Volume{Name: *types.MustACName(name), Kind: "host", Source: source}
	if readOnly {
		v.ReadOnly = &readOnly
	}
	return v
}

func mountOf(vol, path string) schema.Mount {
	return schema.Mount{Volume: *types.MustACName(vol), Path: path}
}

func TestFlyRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	busybox := staticBusybox(t)
	bins := buildFly(t)

	t.Run("app environment, volumes, handlers and status", func(t *testing.T) {
		rw, ro := t.TempDir(), t.TempDir()
		for _, d := range []string{rw, ro} {
			if err := os.Chmod(d, 0o777); err != nil { //nolint:gosec // G302: volumes the app (another uid) writes to
				t.Fatal(err)
			}
		}
		script := strings.Join([]string{
			`echo "uid=$(id -u)"`, `echo "gid=$(id -g)"`, `echo "groups=$(id -G)"`, `echo "pwd=$(pwd)"`,
			`echo "AC_APP_NAME=$AC_APP_NAME"`, `echo "PATH=$PATH"`, `echo "FOO=$FOO"`, `echo "container=$container"`,
			`grep -q '^proc /proc proc ' /proc/mounts && echo proc=mounted`,
			`grep -q '^tmpfs /tmp tmpfs ' /proc/mounts && echo tmp=tmpfs`,
			`test -n "$(grep ' /sys' /proc/mounts)" && test -z "$(grep ' /sys' /proc/mounts | grep -v ' ro,')" && echo sys=readonly`,
			`test -c /dev/null && echo dev=bound`,
			`echo hello > /rw/from-app && echo rw=writable`,
			`(echo x > /ro/file) 2>&1 | grep -q "Read-only file system" && echo ro=readonly`,
			`echo e > /empty/file && echo empty=writable`,
			`test -s /etc/hosts && echo hosts=present`,
			`echo "marker=$(cat /etc/hostname-marker)"`,
			`exit 3`,
		}, "\n")
		app := testApp("/bin/sh", "-c", script)
		app.User, app.Group = "app", "app"
		app.SupplementaryGIDs = []int{2000, 3000}
		app.WorkingDirectory = "/work"
		app.Environment = types.Environment{{Name: "FOO", Value: "bar baz"}}
		app.EventHandlers = []types.EventHandler{
			{Name: "pre-start", Exec: types.Exec{"/bin/sh", "-c", `echo "pre $(id -u)" > /rw/pre-start`}},
			{Name: "post-stop", Exec: types.Exec{"/bin/sh", "-c", `echo "post $(id -u) $(cat /rw/from-app)" > /rw/post-stop`}},
		}
		emptyMode, uid, gid := "0770", 1000, 1000
		podDir := makePod(t, busybox, podSpec{
			app:    app,
			mounts: []schema.Mount{mountOf("rw", "/rw"), mountOf("ro", "/ro"), mountOf("scratch", "/empty")},
			volumes: []types.Volume{
				hostVolume("rw", rw, false), hostVolume("ro", ro, true),
				{Name: *types.MustACName("scratch"), Kind: "empty", Mode: &emptyMode, UID: &uid, GID: &gid},
			},
		})
		cmd, stdout, stderr := runCmd(t, bins, podDir)
		if code := exitCode(t, cmd.Run()); code != 3 {
			t.Fatalf("run exited %d, want 3; stderr:\n%s", code, stderr)
		}
		out := stdout.String()
		for _, want := range []string{
			"uid=1000\n", "gid=1000\n", "pwd=/work\n", "AC_APP_NAME=app\n",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
			"FOO=bar baz\n", "container=nscn\n", "proc=mounted\n", "tmp=tmpfs\n", "rw=writable\n",
			"ro=readonly\n", "empty=writable\n", "sys=readonly\n", "dev=bound\n", "hosts=present\n", "marker=" + marker + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("app output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(out, " 2000") || !strings.Contains(out, " 3000") {
			t.Errorf("app groups lack the supplementary gids 2000 and 3000:\n%s", out)
		}
		if stderr.Len() != 0 {
			t.Errorf("unexpected stderr:\n%s", stderr)
		}
		if got, _ := os.ReadFile(filepath.Join(podDir, stage1abi.AppStatusFile(appName))); string(got) != "3\n" { //nolint:gosec // G304: a file the test made
			t.Errorf("status file = %q, want \"3\\n\"", got)
		}
		// The status was prepared while the app ran (a temporary file)
		// and committed: nothing else is left beside it.
		assertOnlyStatus(t, podDir)
		if got, _ := os.ReadFile(filepath.Join(rw, "pre-start")); string(got) != "pre 0\n" { //nolint:gosec // G304: a file the test made
			t.Errorf("pre-start marker = %q, want it written as root before the app", got)
		}
		if got, _ := os.ReadFile(filepath.Join(rw, "post-stop")); string(got) != "post 0 hello\n" { //nolint:gosec // G304: a file the test made
			t.Errorf("post-stop marker = %q, want it written as root after the app", got)
		}
		if _, err := os.Stat(filepath.Join(ro, "file")); err == nil {
			t.Error("the app wrote into the read-only volume")
		}
		emptyDir := filepath.Join(podDir, stage1abi.EmptyVolumeDir("scratch"))
		st, err := os.Stat(emptyDir)
		if err != nil {
			t.Fatalf("empty volume directory: %v", err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != 0o770 || sys.Uid != 1000 || sys.Gid != 1000 {
			t.Errorf("empty volume directory mode %v owner %d:%d, want 0770 1000:1000", st.Mode().Perm(), sys.Uid, sys.Gid)
		}
		if b, _ := os.ReadFile(filepath.Join(emptyDir, "file")); string(b) != "e\n" { //nolint:gosec // G304: a file the test made
			t.Errorf("empty volume content = %q", b)
		}
		if _, err := os.Stat(filepath.Join(podDir, stage1abi.AppRootfs(appName), "tmp", "x")); err == nil {
			t.Error("the app's /tmp is the rootfs directory, not a tmpfs")
		}

		// gc removes the empty volume and is idempotent.
		for i := range 2 {
			gc := exec.Command(bins.gc, "--debug", podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
			gc.Dir = podDir
			if out, err := gc.CombinedOutput(); err != nil {
				t.Fatalf("gc #%d: %v\n%s", i+1, err, out)
			}
		}
		if _, err := os.Stat(emptyDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("gc left the empty volume: %v", err)
		}
	})

	t.Run("read-only rootfs", func(t *testing.T) {
		podDir := makePod(t, busybox, podSpec{
			app:          testApp("/bin/sh", "-c", `touch /rootfile 2>/dev/null && echo root=writable; touch /tmp/ok && echo tmp=writable`),
			readOnlyRoot: true,
		})
		cmd, stdout, stderr := runCmd(t, bins, podDir)
		if code := exitCode(t, cmd.Run()); code != 0 {
			t.Fatalf("run exited %d; stderr:\n%s", code, stderr)
		}
		if got := stdout.String(); got != "tmp=writable\n" {
			t.Errorf("app output = %q, want only tmp=writable", got)
		}
	})

	t.Run("interactive stdin", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			interactive bool
			want        string
		}{
			{name: "interactive", interactive: true, want: "typed\n"},
			{name: "not interactive reads /dev/null", interactive: false, want: ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				podDir := makePod(t, busybox, podSpec{app: testApp("/bin/cat")})
				var args []string
				if tc.interactive {
					args = append(args, "--interactive")
				}
				cmd, stdout, stderr := runCmd(t, bins, podDir, args...)
				cmd.Stdin = strings.NewReader("typed\n")
				if code := exitCode(t, cmd.Run()); code != 0 {
					t.Fatalf("run exited %d; stderr:\n%s", code, stderr)
				}
				if stdout.String() != tc.want {
					t.Errorf("app output = %q, want %q", stdout, tc.want)
				}
			})
		}
	})

	t.Run("failures exit 254 with one line", func(t *testing.T) {
		target := t.TempDir()
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(t.TempDir(), "missing")
		for _, tc := range []struct {
			name string
			spec podSpec
			want string
		}{
			{
				name: "missing host volume source",
				spec: podSpec{app: testApp("/bin/true"), mounts: []schema.Mount{mountOf("v", "/v")}, volumes: []types.Volume{hostVolume("v", missing, false)}},
				want: missing + " does not exist",
			},
			{
				name: "symlinked host volume source",
				spec: podSpec{app: testApp("/bin/true"), mounts: []schema.Mount{mountOf("v", "/v")}, volumes: []types.Volume{hostVolume("v", link, false)}},
				want: "symbolic link",
			},
			{
				name: "source under a symlinked directory",
				spec: podSpec{app: testApp("/bin/true"), mounts: []schema.Mount{mountOf("v", "/v")}, volumes: []types.Volume{hostVolume("v", filepath.Join(link, "."), false)}},
				want: "symbolic link",
			},
			{name: "two apps", spec: podSpec{app: testApp("/bin/true"), extraApps: 1}, want: "exactly one app"},
			{name: "unknown user", spec: podSpec{app: &types.App{Exec: types.Exec{"/bin/true"}, User: "nobody", Group: "0"}}, want: `user "nobody"`},
			{name: "missing executable", spec: podSpec{app: testApp("/bin/nope")}, want: "/bin/nope"},
			{name: "failing pre-start", spec: podSpec{app: &types.App{
				Exec: types.Exec{"/bin/touch", "/ran"}, User: "0", Group: "0",
				EventHandlers: []types.EventHandler{{Name: "pre-start", Exec: types.Exec{"/bin/sh", "-c", "exit 7"}}},
			}}, want: "status 7"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				podDir := makePod(t, busybox, tc.spec)
				cmd, stdout, stderr := runCmd(t, bins, podDir)
				if code := exitCode(t, cmd.Run()); code != stage1abi.ExitRuntime {
					t.Fatalf("run exited %d, want %d; stdout %q stderr %q", code, stage1abi.ExitRuntime, stdout, stderr)
				}
				assertOneErrorLine(t, stderr.String(), tc.want)
				if _, err := os.Stat(filepath.Join(podDir, stage1abi.AppStatusFile(appName))); err == nil {
					t.Error("a status file was written though the app never ran")
				}
				assertNoStatusTemp(t, podDir)
				if _, err := os.Stat(filepath.Join(podDir, stage1abi.AppRootfs(appName), "ran")); err == nil {
					t.Error("the app ran")
				}
			})
		}
	})

	t.Run("enter and stop a running pod", func(t *testing.T) {
		podDir := makePod(t, busybox, podSpec{app: testApp("/bin/sh", "-c", "echo inside > /tmp/app-marker; exec sleep 100")})
		cmd, _, stderr := runCmd(t, bins, podDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		pid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(podDir, stage1abi.PIDFile))))
		if err != nil {
			t.Fatalf("pid file: %v", err)
		}
		// The app writes its marker into the pod's private /tmp.
		appMarker := ""
		for deadline := time.Now().Add(waitLong); time.Now().Before(deadline) && appMarker == ""; time.Sleep(10 * time.Millisecond) {
			appMarker = enterOutput(t, bins, podDir, pid, "cat", "/tmp/app-marker")
		}

		for _, tc := range []struct {
			name string
			cmd  []string
			want string
		}{
			{name: "file of the image", cmd: []string{"cat", "/etc/hostname-marker"}, want: marker + "\n"},
			{name: "the root is the app's", cmd: []string{"ls", "/"}, want: "work\n"},
			{name: "mounts of the pod", cmd: []string{"cat", "/tmp/app-marker"}, want: "inside\n"},
			{name: "environment of the app", cmd: []string{"sh", "-c", `echo "$AC_APP_NAME $container"`}, want: "app nscn\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := enterOutput(t, bins, podDir, pid, tc.cmd...); !strings.Contains(got, tc.want) {
					t.Errorf("enter %q = %q, want %q", tc.cmd, got, tc.want)
				}
			})
		}
		if appMarker != "inside\n" {
			t.Errorf("enter does not see the pod's /tmp: %q", appMarker)
		}
		t.Run("pod mounts stay in the pod's namespace", func(t *testing.T) {
			assertNoMounts(t, podDir)
		})
		t.Run("exit status passes through", func(t *testing.T) {
			e := exec.Command(bins.enter, "--pid="+strconv.Itoa(pid), "--appname="+appName, "--", "sh", "-c", "exit 5") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
			e.Dir = podDir
			if code := exitCode(t, e.Run()); code != 5 {
				t.Errorf("enter exited %d, want 5", code)
			}
		})
		t.Run("wrong pid is refused", func(t *testing.T) {
			e := exec.Command(bins.enter, "--pid="+strconv.Itoa(os.Getpid()), "--appname="+appName, "--", "ls", "/") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
			e.Dir = podDir
			var errb bytes.Buffer
			e.Stderr = &errb
			if code := exitCode(t, e.Run()); code != stage1abi.ExitRuntime {
				t.Errorf("enter with a foreign pid exited %d, want %d", code, stage1abi.ExitRuntime)
			}
			assertOneErrorLine(t, errb.String(), "not this pod's process")
		})
		t.Run("the pid is a thread of run, alone in the pod's mount namespace", func(t *testing.T) {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("\nTgid:\t%d\n", cmd.Process.Pid); !strings.Contains(string(status), want) || pid == cmd.Process.Pid {
				t.Errorf("pid %d is not a thread of run (pid %d) other than its main one:\n%s", pid, cmd.Process.Pid, status)
			}
			ns := func(p string) string {
				l, err := os.Readlink(p + "/ns/mnt")
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			host := ns("/proc/self")
			if got := ns(fmt.Sprintf("/proc/%d", cmd.Process.Pid)); got != host {
				t.Errorf("run's main thread is in mount namespace %s, want the host's %s", got, host)
			}
			if got := ns(fmt.Sprintf("/proc/%d/task/%d", cmd.Process.Pid, pid)); got == host {
				t.Errorf("the pod thread is in the host's mount namespace %s", got)
			}
		})
		t.Run("run holds the lock, the app does not", func(t *testing.T) {
			holds := func(pid string) bool {
				fds, _ := os.ReadDir("/proc/" + pid + "/fd")
				for _, fd := range fds {
					if target, _ := os.Readlink("/proc/" + pid + "/fd/" + fd.Name()); target == podDir {
						return true
					}
				}
				return false
			}
			if !holds(strconv.Itoa(pid)) {
				t.Error("run holds no descriptor on the pod directory")
			}
			// Children are listed per thread of (Go) run.
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
			var children []string
			for _, task := range tasks {
				b, _ := os.ReadFile(task) //nolint:gosec // G304: a file the test made
				children = append(children, strings.Fields(string(b))...)
			}
			if len(children) != 1 {
				t.Fatalf("children of run: %q", children)
			}
			if holds(children[0]) {
				t.Error("the app holds a descriptor on the pod directory: the lock leaked")
			}
		})

		stop := exec.Command(bins.stop, podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		stop.Dir = podDir
		if out, err := stop.CombinedOutput(); err != nil {
			t.Fatalf("stop: %v\n%s", err, out)
		}
		select {
		case err := <-done:
			if code := exitCode(t, err); code != 128+int(unix.SIGTERM) {
				t.Errorf("run exited %d after stop, want %d; stderr:\n%s", code, 128+int(unix.SIGTERM), stderr)
			}
		case <-time.After(waitLong):
			t.Fatal("run did not exit after stop")
		}
		if got, _ := os.ReadFile(filepath.Join(podDir, stage1abi.AppStatusFile(appName))); string(got) != "143\n" { //nolint:gosec // G304: a file the test made
			t.Errorf("status file = %q, want \"143\\n\"", got)
		}
		waitDead(t, "pod thread", pid)

		again := exec.Command(bins.stop, "--force", podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		again.Dir = podDir
		if out, err := again.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("stop of a stopped pod: %v %q, want quiet success", err, out)
		}
	})

	t.Run("stop during pre-start cancels the app", func(t *testing.T) {
		vol := t.TempDir()
		podDir := makePod(t, busybox, podSpec{
			app: &types.App{
				Exec: types.Exec{"/bin/touch", "/v/app-ran"}, User: "0", Group: "0",
				EventHandlers: []types.EventHandler{{Name: "pre-start", Exec: types.Exec{"/bin/sh", "-c", "echo $$ > /v/pre.pid; exec sleep 100"}}},
			},
			mounts:  []schema.Mount{mountOf("v", "/v")},
			volumes: []types.Volume{hostVolume("v", vol, false)},
		})
		cmd, _, stderr := runCmd(t, bins, podDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		waitFile(t, filepath.Join(vol, "pre.pid"))
		stop := exec.Command(bins.stop, podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		stop.Dir = podDir
		if out, err := stop.CombinedOutput(); err != nil {
			t.Fatalf("stop: %v\n%s", err, out)
		}
		if code := exitCode(t, cmd.Wait()); code != 128+int(unix.SIGTERM) {
			t.Errorf("run exited %d, want %d; stderr:\n%s", code, 128+int(unix.SIGTERM), stderr)
		}
		if _, err := os.Stat(filepath.Join(vol, "app-ran")); err == nil {
			t.Error("the app ran after a stop during pre-start")
		}
		if _, err := os.Stat(filepath.Join(podDir, stage1abi.AppStatusFile(appName))); err == nil {
			t.Error("a status file was written for an app that never ran")
		}
	})

	t.Run("killing or stopping run kills the app", func(t *testing.T) {
		signalRun := func(sig unix.Signal) func(t *testing.T, run *exec.Cmd, _ string) {
			return func(t *testing.T, run *exec.Cmd, _ string) {
				if err := run.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range []struct {
			name     string
			kill     func(t *testing.T, run *exec.Cmd, podDir string)
			wantCode int // run's exit status; 0: run itself is killed by SIGKILL
		}{
			{name: "SIGKILL of run", kill: signalRun(unix.SIGKILL)},
			{name: "SIGTERM of run is forwarded", kill: signalRun(unix.SIGTERM), wantCode: 128 + int(unix.SIGTERM)},
			{name: "SIGHUP of run is forwarded", kill: signalRun(unix.SIGHUP), wantCode: 128 + int(unix.SIGHUP)},
			// The pod thread is run's: SIGKILL takes all of run.
			{name: "stop --force", kill: func(t *testing.T, _ *exec.Cmd, podDir string) {
				stop := exec.Command(bins.stop, "--force", podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
				stop.Dir = podDir
				if out, err := stop.CombinedOutput(); err != nil {
					t.Fatalf("stop --force: %v\n%s", err, out)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				vol := t.TempDir()
				podDir := makePod(t, busybox, podSpec{
					app:     testApp("/bin/sh", "-c", "echo $$ > /v/app.pid; exec sleep 100"),
					mounts:  []schema.Mount{mountOf("v", "/v")},
					volumes: []types.Volume{hostVolume("v", vol, false)},
				})
				cmd, _, _ := runCmd(t, bins, podDir)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cmd.Process.Kill() })
				appPid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(vol, "app.pid"))))
				if err != nil {
					t.Fatal(err)
				}
				podPid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(podDir, stage1abi.PIDFile))))
				if err != nil {
					t.Fatal(err)
				}
				tc.kill(t, cmd, podDir)
				err = cmd.Wait()
				waitDead(t, "pod thread", podPid)
				waitDead(t, "app", appPid)
				if tc.wantCode != 0 {
					if code := exitCode(t, err); code != tc.wantCode {
						t.Errorf("run exited %d, want %d", code, tc.wantCode)
					}
				} else if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
					t.Errorf("run ended with %v, want killed by SIGKILL", err)
				}
			})
		}
	})

	t.Run("descriptors inherited from stage0 do not reach the app", func(t *testing.T) {
		podDir := makePod(t, busybox, podSpec{app: testApp("/bin/ls", "/proc/self/fd")})
		cmd, stdout, stderr := runCmd(t, bins, podDir)
		extra, err := os.Open(podDir) //nolint:gosec // G304: a directory the test made
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = extra.Close() }()
		cmd.ExtraFiles = append(cmd.ExtraFiles, extra) // fd 4, not close-on-exec
		if err := cmd.Run(); err != nil {
			t.Fatalf("run: %v\n%s", err, stderr)
		}
		// ls's own descriptor on the directory is 3.
		if fds := strings.Fields(stdout.String()); !slices.Equal(fds, []string{"0", "1", "2", "3"}) {
			t.Errorf("the app's descriptors: %q, want 0 to 3", fds)
		}
	})

	t.Run("gc unmounts leftovers and removes empty volumes", func(t *testing.T) {
		podDir := makePod(t, busybox, podSpec{app: testApp("/bin/true")})
		rootfs := filepath.Join(podDir, stage1abi.AppRootfs(appName))
		vol := filepath.Join(podDir, stage1abi.EmptyVolumeDir("scratch"))
		for _, dir := range []string{filepath.Join(rootfs, "leftover"), filepath.Join(rootfs, "leftover", "nested"), vol} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
				t.Fatalf("mount a leftover: %v", err)
			}
		}
		mustWrite(t, filepath.Join(vol, "data"), "x", 0o644)
		for i := range 2 {
			gc := exec.Command(bins.gc, podUUID) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
			gc.Dir = podDir
			if out, err := gc.CombinedOutput(); err != nil {
				t.Fatalf("gc #%d: %v\n%s", i+1, err, out)
			}
		}
		if _, err := os.Stat(filepath.Join(podDir, stage1abi.EmptyVolumesDir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("gc left the empty volumes: %v", err)
		}
		if _, err := os.Stat(filepath.Join(rootfs, "bin", "busybox")); err != nil {
			t.Errorf("gc removed the app rootfs: %v", err)
		}
	})
}

// enterOutput runs the enter entrypoint and returns its stdout.
func enterOutput(t *testing.T, bins flyBins, podDir string, pid int, cmd ...string) string {
	t.Helper()
	e := exec.Command(bins.enter, append([]string{"--pid=" + strconv.Itoa(pid), "--appname=" + appName, "--"}, cmd...)...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	e.Dir = podDir
	var out bytes.Buffer
	e.Stdout, e.Stderr = &out, io.Discard
	_ = e.Run()
	return out.String()
}

// assertOnlyStatus fails unless the app's status directory holds its
// status file and nothing else.
func assertOnlyStatus(t *testing.T, podDir string) {
	t.Helper()
	dir := filepath.Dir(filepath.Join(podDir, stage1abi.AppStatusFile(appName)))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != filepath.Base(stage1abi.AppStatusFile(appName)) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("status directory holds %q, want only the status file", names)
	}
}

// assertNoStatusTemp fails if a temporary status file was left behind by a
// run whose app did not run.
func assertNoStatusTemp(t *testing.T, podDir string) {
	t.Helper()
	dir := filepath.Dir(filepath.Join(podDir, stage1abi.AppStatusFile(appName)))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("status directory holds %s though the app never ran", e.Name())
	}
}
