//go:build functional && nspawn

package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// nspawnACI is the stage1-nspawn image under test, from make.
func nspawnACI(t *testing.T) string { return mustEnv(t, "NSCN_STAGE1_NSPAWN_ACI") }

// nspawnRunArgs is the argv of nscn run with the stage1-nspawn image on
// the host's network, then args.
func nspawnRunArgs(t *testing.T, args ...string) []string {
	return append([]string{"--insecure-options=image", "run", "--net=host", "--stage1-path=" + nspawnACI(t)}, args...)
}

// nspawnRun runs nscn run with the stage1-nspawn image.
func (e *env) nspawnRun(args ...string) result {
	e.t.Helper()
	return e.run(nspawnRunArgs(e.t, args...)...)
}

// nspawnSh runs a shell script as the app of a busybox pod.
func (e *env) nspawnSh(script string, flags ...string) result {
	e.t.Helper()
	args := append([]string{busybox(e.t)}, flags...)
	return e.nspawnRun(append(args, "--exec=/bin/sh", "--", "-c", script)...)
}

func TestNspawnExitStatusPropagates(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		script string
		code   int
	}{
		{name: "success", script: "exit 0", code: 0},
		{name: "failure", script: "exit 3", code: 3},
		{name: "high status", script: "exit 200", code: 200},
		{name: "killed by signal", script: "kill -9 $$", code: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.nspawnSh(tt.script)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, tt.code, r.stderr)
			}
		})
	}
	t.Run("missing executable", func(t *testing.T) {
		r := e.nspawnRun(busybox(t), "--exec=/no/such/binary")
		if r.code != 254 || !strings.Contains(r.stderr, "/no/such/binary") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	assertPodsGone(t, e)
}

func TestNspawnFirstFailingAppWins(t *testing.T) {
	e := newEnv(t)
	// a succeeds at once, b fails first with 5, c would fail later with
	// 6 but is stopped when b fails.
	r := e.nspawnRun(
		busybox(t), "--name=a", "--exec=/bin/sh", "--", "-c", "exit 0", "---",
		busybox(t), "--name=b", "--exec=/bin/sh", "--", "-c", "sleep 1; exit 5", "---",
		busybox(t), "--name=c", "--exec=/bin/sh", "--", "-c", "sleep 4; exit 6")
	if r.code != 5 {
		t.Fatalf("exit %d, want 5; stderr: %s", r.code, r.stderr)
	}
	uuid := nspawnOnlyPod(t, e)
	st := e.ok("status", "--format=json", uuid)
	var got struct {
		Apps []struct {
			Name     string `json:"name"`
			ExitCode int    `json:"exit_code"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &got); err != nil {
		t.Fatalf("parse status %s: %v", st.stdout, err)
	}
	codes := map[string]int{}
	for _, a := range got.Apps {
		codes[a.Name] = a.ExitCode
	}
	if codes["a"] != 0 || codes["b"] != 5 || codes["c"] != 143 || len(codes) != 3 {
		t.Errorf("recorded app statuses %v, want a:0 b:5 c:143", codes)
	}
	assertPodsGone(t, e)
}

func TestNspawnTwoAppsShareThePod(t *testing.T) {
	e := newEnv(t)
	// b waits for the file a writes in the shared empty volume, shares
	// the pod's hostname, and does not see a's process: each app has a
	// PID namespace of its own (Documentation/security.md, class 10).
	// a stays alive until b has looked (the ack file), and both wait
	// up to 20 s, so a loaded machine that starts one app late makes
	// the test slower, not wrong. b's ps pattern cannot match b itself.
	// a writes the message aside and renames it, so that b, which waits
	// for the name, never reads it between its creation and its write.
	r := e.run("--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t),
		"--volume", "shared,kind=empty",
		busybox(t), "--name=a", "--mount", "volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c",
		"echo from-a > /shared/msg.tmp && mv /shared/msg.tmp /shared/msg; i=0; while [ ! -e /shared/ack ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.2; done", "---",
		busybox(t), "--name=b", "--mount", "volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c",
		`i=0; while [ ! -e /shared/msg ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.2; done; echo b-got $(cat /shared/msg) $(hostname | cut -c1-5) $(ps | grep -c '[f]rom-a >'); touch /shared/ack`)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
	}
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "b-got from-a nscn- 0" {
		t.Fatalf("apps printed %q", r.stdout)
	}
	assertPodsGone(t, e)
}

func TestNspawnAppEnvironmentAndUser(t *testing.T) {
	e := newEnv(t)
	r := e.nspawnSh(`echo "name=$AC_APP_NAME container=$container path=$PATH greeting=$GREETING host=$HOST_ONLY"; echo to-stderr >&2`,
		"--name=probe")
	want := "name=probe container=nscn path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin greeting=Hello from Nose Cone host="
	if r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("app printed %q (exit %d, %s), want %q", r.stdout, r.code, r.stderr, want)
	}
	if !strings.Contains(r.stderr, "to-stderr") || strings.Contains(r.stdout, "to-stderr") {
		t.Fatalf("the app's stderr is not kept apart: stdout %q stderr %q", r.stdout, r.stderr)
	}
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{name: "image default", want: "0 0 / 0"},
		{name: "by name", flags: []string{"--user=user", "--group=user"}, want: "1000 1000 / 1000"},
		{name: "supplementary gids and workdir", flags: []string{"--user=user", "--group=user", "--supplementary-gids=1001,2000", "--working-dir=/home/user"}, want: "1000 1000 /home/user 1000 1001 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.nspawnSh(`echo $(id -u) $(id -g) $(pwd) $(id -G)`, tt.flags...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != tt.want {
				t.Fatalf("got %q (exit %d, %s), want %q", strings.TrimSpace(r.stdout), r.code, r.stderr, tt.want)
			}
		})
	}
	assertPodsGone(t, e)
}

func TestNspawnNoNetwork(t *testing.T) {
	e := newEnv(t)
	r := e.run("--insecure-options=image", "run", "--net=none", "--stage1-path="+nspawnACI(t), busybox(t),
		"--exec=/bin/sh", "--", "-c", "ls /sys/class/net | tr '\\n' ' '")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "lo" {
		t.Fatalf("interfaces %q (exit %d, %s), want only lo", r.stdout, r.code, r.stderr)
	}
	assertPodsGone(t, e)
}

func TestNspawnEnterAndStop(t *testing.T) {
	tests := []struct {
		name  string
		force bool
		code  int
	}{
		{name: "graceful", code: 143},
		{name: "force", force: true, code: 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := startPod(t, e, 10*time.Second, []string{"ready"}, nspawnRunArgs(t,
				busybox(t), "--name=sleeper", "--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 300")...)
			uuid := p.uuid
			r := e.ok("enter", uuid, "/bin/sh", "-c", `echo $AC_APP_NAME $(id -u) $(pwd); ps -o comm | grep -c '^sleep$'`)
			if got := strings.Join(strings.Fields(r.stdout), " "); got != "sleeper 0 / 1" {
				t.Fatalf("enter printed %q", r.stdout)
			}
			r = e.run("enter", uuid, "/bin/sh", "-c", "exit 7")
			if r.code != 7 {
				t.Fatalf("enter exit %d, want 7: %s", r.code, r.stderr)
			}
			stop := []string{"stop"}
			if tt.force {
				stop = append(stop, "--force")
			}
			e.ok(append(stop, uuid)...)
			err := p.wait()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.code {
				t.Fatalf("run exited %d after stop, want %d; stderr %s", code, tt.code, p.errb.String())
			}
			assertPodsGone(t, e)
		})
	}
}

// TestDefaultStage1IsNspawn runs a pod with no stage1 flag and no stage1
// configuration: the build's default, stage1-nspawn.aci beside nscn, runs
// the app below its app helper, whose init is pid 1 of the app's PID
// namespace (systemd, the pod's pid 1, is out of the app's view).
func TestDefaultStage1IsNspawn(t *testing.T) {
	e := newEnv(t)
	if err := os.Remove(filepath.Join(e.system, "stage1.d", testutil.Stage1DefaultFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(nscnBin(t)), "stage1-nspawn.aci")); err != nil {
		t.Fatalf("make must put stage1-nspawn.aci beside nscn: %v", err)
	}
	r := e.ok("--insecure-options=image", "run", busybox(t), "--exec=/bin/cat", "--", "/proc/1/cmdline")
	if got := r.stdout; !strings.HasPrefix(got, "/nscn/app-init\x00") {
		t.Fatalf("pid 1 of the app's PID namespace is %q, want stage1-nspawn's app init", got)
	}
	assertPodsGone(t, e)
}

// TestNspawnAppStartPaths runs an app by each of the app helper's two
// ways into the app's namespaces (stage1/entrypoint/appns_linux.go): from
// the helper's own thread where the kernel's procfs takes the pidns
// option and the seccomp filter allows it, otherwise by a second start of
// the helper. Each app is confined the same: its own PID namespace below
// the helper's init, its filter applied, the app's user.
func TestNspawnAppStartPaths(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		flags []string
		fast  bool
		uname string // what uname -s prints: busybox prints an empty name when the syscall fails
	}{
		{name: "default policy", fast: procfsTakesPidns(t), uname: "Linux"},
		// uname is among the syscalls the helper's own thread makes
		// while it starts the app, so the filter must be installed by a
		// process that then only execs.
		{name: "a filter the start needs", flags: []string{"--seccomp=mode=remove,errno=ENOTSUP,uname"}, uname: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{
				"--debug", "--insecure-options=image", "run", "--net=host", "--stage1-path=" + nspawnACI(t), busybox(t),
				"--user=user", "--group=user",
			}, tt.flags...)
			r := e.run(append(args, "--exec=/bin/sh", "--", "-c",
				`echo "init=$(tr '\0' ' ' < /proc/1/cmdline) self=$$ uid=$(id -u)"; uname -s 2>&1`)...)
			if r.code != 0 {
				t.Fatalf("exit %d; stderr: %s", r.code, r.stderr)
			}
			const want = `msg="app running in its namespaces" flavor=nspawn app=busybox mode=run took=`
			var line string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			if !strings.HasSuffix(line, fmt.Sprintf(" fast=%v", tt.fast)) {
				t.Fatalf("the helper's containment line %q, want fast=%v", line, tt.fast)
			}
			f := strings.Fields(r.stdout)
			if len(f) < 4 || f[0] != "init=/nscn/app-init" || f[1] != "busybox" || f[3] != "uid=1000" {
				t.Fatalf("app printed %q", r.stdout)
			}
			if lines := strings.Split(r.stdout, "\n"); len(lines) < 2 || lines[1] != tt.uname {
				t.Fatalf("uname -s printed %q, want %q", r.stdout, tt.uname)
			}
		})
	}
	assertPodsGone(t, e)
}

// procfsTakesPidns reports whether this kernel's procfs has the pidns
// mount option (Linux 6.15 on), with which the app helper mounts an app's
// /proc from outside the app's PID namespace.
func procfsTakesPidns(t *testing.T) bool {
	t.Helper()
	fd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	err = unix.FsconfigSetString(fd, "pidns", "/proc/self/ns/pid")
	if err != nil && !errors.Is(err, unix.EINVAL) {
		t.Fatal(err)
	}
	return err == nil
}

// TestNspawnAppsHaveTheirOwnMountNamespace runs two apps, one of which
// mounts a tmpfs in its root: the mount is in that app's view, and in
// what nscn enter shows of it, but neither in the other app's nor in the
// pod's; and the two apps' mount namespaces differ.
func TestNspawnAppsHaveTheirOwnMountNamespace(t *testing.T) {
	e := newEnv(t)
	// Mounting needs CAP_SYS_ADMIN and the mount syscall, which the
	// default policy withholds.
	p := startPod(t, e, 20*time.Second, []string{"mounter mnt:", "other mnt:"},
		"--insecure-options=image,capabilities,seccomp", "run", "--net=host", "--stage1-path="+nspawnACI(t),
		busybox(t), "--name=mounter", "--exec=/bin/sh", "--", "-c",
		`mkdir /tmp/scratch && mount -t tmpfs -o size=1m scratch /tmp/scratch && echo hi > /tmp/scratch/only-here && echo "mounter $(readlink /proc/self/ns/mnt)" && exec sleep 300`,
		"---",
		busybox(t), "--name=other", "--exec=/bin/sh", "--", "-c",
		`echo "other $(readlink /proc/self/ns/mnt)" && exec sleep 300`)
	uuid := p.uuid
	ns := map[string]string{}
	for _, l := range strings.Split(p.out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			ns[f[0]] = f[1]
		}
	}
	if ns["mounter"] == ns["other"] {
		t.Fatalf("both apps are in mount namespace %s", ns["mounter"])
	}
	// enter resolves paths through the app's own mounts.
	if r := e.run("enter", "--app=mounter", uuid, "/bin/cat", "/tmp/scratch/only-here"); r.code != 0 || r.stdout != "hi\n" {
		t.Errorf("enter into the mounting app does not see its tmpfs: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The pod (its pid 1, systemd) sees neither the tmpfs the app
	// mounted nor the app's tree (its /dev, /sys, its /tmp, where the
	// app made the directory…), which each helper makes in a mount
	// namespace of its own, out of the pod's systemd's sight: each mount
	// there would be one of its mount units.
	for _, l := range strings.Split(e.ok("status", uuid).stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && k == "pid" {
			p := filepath.Join("/proc", v, "root", "opt/stage2/mounter/rootfs/tmp/scratch")
			if _, err := os.Stat(filepath.Join(p, "only-here")); err == nil {
				t.Errorf("the app's tmpfs reached the pod's mount namespace")
			}
			mi, err := os.ReadFile(filepath.Join("/proc", v, "mountinfo")) //nolint:gosec // G304: the pod's pid 1, as status printed it
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range strings.Split(string(mi), "\n") {
				if f := strings.Fields(m); len(f) > 4 && strings.HasPrefix(f[4], "/opt/stage2/") && strings.Count(f[4], "/") > 4 {
					t.Errorf("the pod's mount table lists a mount of an app's tree: %s", m)
				}
			}
		}
	}
	e.ok("stop", uuid)
	_ = p.wait()
	assertPodsGone(t, e)
}

// TestNspawnAppDevices checks an app's /dev against appc's OS-SPEC: the
// listed devices work, and nothing else of the host's or the container's
// devices is there.
func TestNspawnAppDevices(t *testing.T) {
	e := newEnv(t)
	r := e.nspawnSh(`cd /dev && ls -A | sort | tr '\n' ' '; echo
head -c 4 /dev/zero | od -An -tx1
echo x > /dev/null && echo null-ok
head -c 8 /dev/urandom | wc -c
echo x > /dev/full 2>/dev/null || echo full-refuses
test -c /dev/ptmx && test -d /dev/pts && echo pts-ok
touch /dev/shm/a && echo shm-ok
readlink /dev/fd`)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := "console fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"
	if got := strings.TrimSpace(lines[0]); got != want {
		t.Errorf("/dev holds %q, want %q", got, want)
	}
	rest := strings.Join(lines[1:], "\n")
	for _, w := range []string{"00 00 00 00", "null-ok", "8", "full-refuses", "pts-ok", "shm-ok", "/proc/self/fd"} {
		if !strings.Contains(rest, w) {
			t.Errorf("output lacks %q:\n%s", w, r.stdout)
		}
	}
	assertPodsGone(t, e)
}

// TestNspawnACEValidator runs the ACE validator (aceValidator) on the
// host network and on the default CNI network.
func TestNspawnACEValidator(t *testing.T) {
	for _, net := range []string{"host", "default"} {
		t.Run(net, func(t *testing.T) { aceValidator(t, nspawnACI(t), net) })
	}
}
