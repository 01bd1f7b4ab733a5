//go:build functional && fly

package tests

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fly runs nscn with the fly stage1 built beside nscn.
func (e *env) flyRun(args ...string) result {
	e.t.Helper()
	return e.run(append([]string{"--insecure-options=image", "run", "--stage1-from-dir=stage1-fly.aci"}, args...)...)
}

// sh runs a shell script as the app of a busybox pod.
func (e *env) sh(script string, flags ...string) result {
	e.t.Helper()
	args := append([]string{busybox(e.t)}, flags...)
	args = append(args, "--exec=/bin/sh", "--", "-c", script)
	return e.flyRun(args...)
}

func TestFlyExitStatusPropagates(t *testing.T) {
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
			r := e.sh(tt.script)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, tt.code, r.stderr)
			}
		})
	}
}

func TestFlyAppEnvironment(t *testing.T) {
	e := newEnv(t)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# comment\nFROM_FILE=file\nOVERRIDDEN=file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOST_ONLY", "host")
	t.Setenv("GREETING", "from host")
	script := `echo "name=$AC_APP_NAME container=$container path=$PATH greeting=$GREETING file=$FROM_FILE over=$OVERRIDDEN host=$HOST_ONLY"`
	r := e.run("--insecure-options=image", "run", "--inherit-env", "--set-env-file", envFile,
		busybox(t), "--name=probe", "--set-env=OVERRIDDEN=flag", "--exec=/bin/sh", "--", "-c", script)
	if r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	want := "name=probe container=nscn path=" + os.Getenv("PATH") + " greeting=Hello from Nose Cone file=file over=flag host=host"
	if got := strings.TrimSpace(r.stdout); got != want {
		t.Fatalf("app saw\n%s\nwant\n%s", got, want)
	}
	// Without --inherit-env, nothing of the host's comes in, and PATH is
	// the spec's default.
	r = e.sh(`echo "path=$PATH host=$HOST_ONLY greeting=$GREETING"`)
	want = "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin host= greeting=Hello from Nose Cone"
	if got := strings.TrimSpace(r.stdout); got != want {
		t.Fatalf("app saw\n%s\nwant\n%s", got, want)
	}
}

func TestFlyUserGroupAndWorkingDir(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{name: "image default", want: "0 0 / 0"},
		{name: "by name", flags: []string{"--user=user", "--group=user"}, want: "1000 1000 / 1000"},
		{name: "by id", flags: []string{"--user=1000", "--group=1001"}, want: "1000 1001 / 1001"},
		{name: "supplementary gids and workdir", flags: []string{"--user=user", "--group=user", "--supplementary-gids=1001,2000", "--working-dir=/home/user"}, want: "1000 1000 /home/user 1000 1001 2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.sh(`echo $(id -u) $(id -g) $(pwd) $(id -G)`, tt.flags...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != tt.want {
				t.Fatalf("got %q (exit %d, %s), want %q", strings.TrimSpace(r.stdout), r.code, r.stderr, tt.want)
			}
		})
	}
	e.fails("nobody-here", "--insecure-options=image", "run", busybox(t), "--user=nobody-here", "--exec=/bin/true")
}

func TestFlyVolumes(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := t.TempDir()
	script := `cat /rw/in && echo written > /rw/out && (echo x > /ro/x 2>/dev/null && echo ro-writable || echo ro-refused) && echo e > /scratch/f && ls /scratch && grep -q ' /tmp tmpfs' /proc/mounts && echo tmp-ok`
	r := e.run("--insecure-options=image", "run",
		"--volume", "rw,kind=host,source="+host,
		"--volume", "ro,kind=host,source="+ro+",readOnly=true",
		"--volume", "scratch,kind=empty",
		busybox(t),
		"--mount", "volume=rw,target=/rw",
		"--mount", "volume=ro,target=/ro",
		"--mount", "volume=scratch,target=/scratch",
		"--exec=/bin/sh", "--", "-c", script)
	if r.code != 0 {
		t.Fatalf("run: %d %s", r.code, r.stderr)
	}
	if got := strings.Fields(r.stdout); strings.Join(got, " ") != "from host ro-refused f tmp-ok" {
		t.Fatalf("app output %q", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(host, "out")); err != nil || string(b) != "written\n" { //nolint:gosec // G304: a file the test made
		t.Fatalf("write through rw volume: %q %v", b, err)
	}
}

func TestFlyBadInputLeavesNoPod(t *testing.T) {
	e := newEnv(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown image", args: []string{"run", "example.com/no-such-image"}, want: "no-such-image"},
		{name: "missing image file", args: []string{"run", "/nonexistent/x.aci"}, want: "does not exist"},
		{name: "malformed volume", args: []string{"run", "--volume", "bad,kind=nope", busybox(t)}, want: "--volume"},
		{name: "missing volume source", args: []string{"run", "--volume", "v,kind=host,source=/nonexistent-nscn", busybox(t)}, want: "does not exist"},
		{name: "symlinked volume source", args: []string{"run", "--volume", "v,kind=host,source=" + link, busybox(t)}, want: "symlink"},
		{name: "mount of undefined volume", args: []string{"run", busybox(t), "--mount", "volume=nope,target=/x"}, want: "nope"},
		{name: "conflicting stage1 flags", args: []string{"run", "--stage1-path=/a.aci", "--stage1-name=b", busybox(t)}, want: "use one"},
		{name: "pod flag after image", args: []string{"run", busybox(t), "--volume", "v,kind=empty"}, want: "before the first image"},
		{name: "unknown flag", args: []string{"run", "--frobnicate", busybox(t)}, want: "unknown flag"},
		{name: "no image", args: []string{"run"}, want: "IMAGE"},
		{name: "duplicate app names", args: []string{"run", busybox(t), "---", busybox(t)}, want: "--name"},
		{name: "bad memory quantity", args: []string{"run", busybox(t), "--memory=lots"}, want: "--memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.fails(tt.want, append([]string{"--insecure-options=image"}, tt.args...)...)
			if r.code == 0 || r.code == 3 {
				t.Fatalf("exit %d", r.code)
			}
			assertNoPods(t, e)
		})
	}
	// An app that does not exist in the image: the stage1 fails (254)
	// and the pod it leaves is one gc can clean.
	r := e.flyRun(busybox(t), "--exec=/no/such/binary")
	if r.code != 254 || !strings.Contains(r.stderr, "/no/such/binary") {
		t.Fatalf("missing executable: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestFlyPrepareThenRunPrepared(t *testing.T) {
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.ok("--insecure-options=image", "prepare", "--uuid-file-save", uuidFile, "--stage1-from-dir=stage1-fly.aci", busybox(t), "--exec=/bin/sh", "--", "-c", "echo prepared-and-ran; exit 4")
	uuid := strings.TrimSpace(r.stdout)
	saved, err := os.ReadFile(uuidFile) //nolint:gosec // G304: a file the test made
	if err != nil || strings.TrimSpace(string(saved)) != uuid {
		t.Fatalf("uuid file %q, stdout %q", saved, uuid)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "pods", "prepared", uuid)); err != nil {
		t.Fatalf("prepared pod dir: %v", err)
	}
	r = e.run("run-prepared", uuid[:8])
	if r.code != 4 || strings.TrimSpace(r.stdout) != "prepared-and-ran" {
		t.Fatalf("run-prepared: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.fails("not prepared", "run-prepared", uuid)
}

func TestFlyLogsNotRecorded(t *testing.T) {
	e := newEnv(t)
	if r := e.sh("echo hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*-*-*-*-*"))
	if len(pods) != 1 {
		t.Fatalf("want one pod, have %v", pods)
	}
	r := e.fails("records no app logs", "logs", filepath.Base(pods[0]))
	if r.code != 254 || !strings.Contains(r.stderr, "stage1-fly") {
		t.Fatalf("exit %d, stderr %q: want 254 naming the fly stage1", r.code, r.stderr)
	}
}

// TestDNSFlagsWinOverAVolume checks rkt's precedence for the apps'
// resolv.conf: --dns wins over a volume that holds the file, which wins
// over the image's own; and nothing is written into the volume.
func TestDNSFlagsWinOverAVolume(t *testing.T) {
	e := newEnv(t)
	etc := t.TempDir()
	const fromVolume = "nameserver 192.0.2.99\n"
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(fromVolume), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.snapshotDir(etc)
	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{name: "the volume's file", want: "192.0.2.99"},
		{name: "--dns over the volume", flags: []string{"--dns=192.0.2.53"}, want: "192.0.2.53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--insecure-options=image", "run", "--volume", "etc,kind=host,source=" + etc}, tt.flags...)
			args = append(args, busybox(t), "--mount", "volume=etc,target=/etc", "--exec=/bin/cat", "--", "/etc/resolv.conf")
			r := e.ok(args...)
			if !strings.Contains(r.stdout, "nameserver "+tt.want) {
				t.Fatalf("resolv.conf is %q, want nameserver %s", r.stdout, tt.want)
			}
		})
	}
	if after := e.snapshotDir(etc); after != before {
		t.Fatalf("the volume changed:\nbefore %s\nafter %s", before, after)
	}
	e.ok("gc", "--grace-period=0s")
}

// snapshotDir lists dir's files with their contents.
func (e *env) snapshotDir(dir string) string {
	e.t.Helper()
	var b strings.Builder
	ents, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range ents {
		data, _ := os.ReadFile(filepath.Join(dir, ent.Name())) //nolint:gosec // G304: a file the test made
		fmt.Fprintf(&b, "%s=%q;", ent.Name(), data)
	}
	return b.String()
}

// TestFlyPodRootfsIsEmpty: stage1-fly asks for an empty pod rootfs
// (nscn.io/stage1/pod-rootfs), so stage0 mounts no overlay of the stage1
// and copies none of its files into the pod: stage1/rootfs is a plain
// directory holding the app's rootfs mount and the app's status file,
// which status reads, and rm removes the pod.
func TestFlyPodRootfsIsEmpty(t *testing.T) {
	e := newEnv(t)
	if r := e.sh("exit 5"); r.code != 5 {
		t.Fatalf("run: exit %d, stderr %s", r.code, r.stderr)
	}
	podDir := onlyPod(t, e)
	uuid := filepath.Base(podDir)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	stage1 := filepath.Join(podDir, "stage1", "rootfs")
	app := filepath.Join(stage1, "opt", "stage2", "busybox", "rootfs")
	var mounts []string
	for line := range strings.SplitSeq(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], podDir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	if len(mounts) != 1 || mounts[0] != app {
		t.Errorf("mounts under the pod %v, want only the app's rootfs %s", mounts, app)
	}
	ents, err := os.ReadDir(stage1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != "opt rkt" {
		t.Errorf("stage1/rootfs holds %v, want opt and rkt only (no copy of the stage1's files)", names)
	}
	for _, gone := range []string{filepath.Join("overlay", "stage1"), filepath.Join("stage1", "rootfs", "fly")} {
		if _, err := os.Lstat(filepath.Join(podDir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s in a fly pod: %v", gone, err)
		}
	}
	if r := e.ok("status", uuid); !strings.Contains(r.stdout, "app-busybox=5") {
		t.Errorf("status does not report the app's exit: %s", r.stdout)
	}
	e.ok("rm", uuid)
	if _, err := os.Lstat(podDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pod directory after rm: %v", err)
	}
}
