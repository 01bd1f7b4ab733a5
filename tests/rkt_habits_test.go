//go:build functional

package tests

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/mountplan"
)

// The habits of a long-time rkt user (issue 14), as that user sees them:
// the command lines of rkt's documentation and functional tests, run
// against the nscn binary. The pods run with the env's default stage1
// (fly); rkt_habits_nspawn_test.go has what only stage1-nspawn does.

// rebuiltBusybox is the busybox test image unpacked, changed by mutate
// (its layout dir: manifest and rootfs/) and built again with actool.
func rebuiltBusybox(t *testing.T, mutate func(t *testing.T, layout string, m map[string]any)) string {
	t.Helper()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xzf", busybox(t), "-C", layout).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("unpack busybox: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(layout, "manifest")) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	mutate(t, layout, m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "manifest"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.aci")
	if b, err := exec.Command(actool(t), "build", "--overwrite", layout, out).CombinedOutput(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		t.Fatalf("actool build: %v\n%s", err, b)
	}
	return out
}

// setLabels replaces the os and arch labels of manifest m (absent when "").
func setLabels(m map[string]any, osName, arch string) {
	var ls []any
	for _, l := range m["labels"].([]any) {
		switch l.(map[string]any)["name"] {
		case "os", "arch":
		default:
			ls = append(ls, l)
		}
	}
	if osName != "" {
		ls = append(ls, map[string]any{"name": "os", "value": osName})
	}
	if arch != "" {
		ls = append(ls, map[string]any{"name": "arch", "value": arch})
	}
	m["labels"] = ls
}

// shArgs is the run argv of a busybox app running script, after flags.
func shArgs(image, script string, flags ...string) []string {
	args := append([]string{"--insecure-options=image", "run"}, flags...)
	return append(args, image, "--exec=/bin/sh", "--", "-c", script)
}

func TestRktImageCommandsTakeNames(t *testing.T) {
	e := newEnv(t)
	r := e.ok("--insecure-options=image", "fetch", busybox(t))
	key := strings.TrimSpace(r.stdout)
	// rkt: "image: using image from file PATH".
	if !strings.Contains(r.stderr, "using image from file "+busybox(t)) {
		t.Errorf("fetch of a file did not say where the image came from:\n%s", r.stderr)
	}
	if n := strings.Count(r.stderr, "signature verification is disabled"); n != 1 {
		t.Errorf("--insecure-options=image said so %d times, want once:\n%s", n, r.stderr)
	}
	const name = "nosecone.dev/busybox"
	if out := e.ok("image", "cat-manifest", name).stdout; !strings.Contains(out, `"`+name+`"`) {
		t.Errorf("image cat-manifest %s printed:\n%s", name, out)
	}
	if out := e.ok("image", "render", name).stdout; !strings.HasPrefix(out, "deps-") {
		t.Errorf("image render %s printed %q", name, out)
	}
	dir := t.TempDir()
	e.ok("image", "extract", "--rootfs-only", name, filepath.Join(dir, "x"))
	if _, err := os.Stat(filepath.Join(dir, "x", "bin", "busybox")); err != nil {
		t.Errorf("image extract by name: %v", err)
	}
	e.ok("image", "export", name, filepath.Join(dir, "x.aci"))
	e.ok("image", "verify", name)
	// A name that is not stored is "not in the store"; a stored one
	// never is.
	e.fails("in the store", "image", "cat-manifest", "example.com/absent")
	if r := e.run("image", "cat-manifest", name+":0.0.0-none"); r.code == 0 || !strings.Contains(r.stderr, "in the store") {
		t.Errorf("a version not stored: exit %d, %s", r.code, r.stderr)
	}

	// rkt's JSON: --format=json on one line, json-pretty indented.
	if out := e.ok("image", "list", "--format=json").stdout; strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("image list --format=json is not one line:\n%s", out)
	}
	if out := e.ok("image", "list", "--format=json-pretty").stdout; !strings.Contains(out, "\n  {") {
		t.Errorf("image list --format=json-pretty is not indented:\n%s", out)
	}
	hello := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", filepath.Join(imagesDir(t), "hello.aci")).stdout)
	names := func(args ...string) []string {
		out := e.ok(append([]string{"image", "list", "--no-legend", "--fields=id"}, args...)...).stdout
		return strings.Fields(out)
	}
	if got := names("--sort=importtime", "--order=desc"); len(got) != 2 || got[0] != hello || got[1] != key {
		t.Errorf("image list --order=desc: %v, want %s then %s", got, hello, key)
	}
	if got := names("--sort=name"); len(got) != 2 || got[0] != key {
		t.Errorf("image list --sort=name: %v, want busybox first", got)
	}

	r = e.ok("image", "rm", name, "nosecone.dev/hello")
	if !strings.HasSuffix(r.stderr, "2 image(s) successfully removed\n") {
		t.Errorf("image rm did not count, as rkt did:\n%s", r.stderr)
	}
	r = e.run("image", "rm", name)
	if r.code == 0 || strings.Contains(r.stderr, "successfully removed") || !strings.Contains(r.stderr, "in the store") {
		t.Errorf("image rm of a removed name: exit %d\n%s", r.code, r.stderr)
	}
	// image gc ends as rkt's did too.
	e.ok("--insecure-options=image", "fetch", busybox(t))
	if r := e.ok("image", "gc", "--grace-period=0s"); !strings.HasSuffix(r.stderr, "\n1 image(s) successfully removed\n") {
		t.Errorf("image gc did not count, as rkt did:\n%s", r.stderr)
	}
}

func TestRktGlobalFlagsAfterCommand(t *testing.T) {
	e := newEnv(t)
	// The flags rkt users put anywhere: after run, among its flags, and
	// after status.
	bin := nscnBin(t)
	run := exec.Command(bin, "run", "--dir", e.dir, "--local-config="+e.local, "--insecure-options=image", //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		"--system-config", e.system, "--set-env=X=y", busybox(t), "--exec=/bin/sh", "--", "-c", `echo "x=$X"`)
	out, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "x=y") {
		t.Fatalf("run with global flags after it: %v\n%s", err, out)
	}
	uuid := strings.TrimSpace(e.ok("list", "--no-legend", "--full").stdout)
	uuid = strings.Fields(uuid)[0]
	st := exec.Command(bin, "status", "--dir="+e.dir, uuid) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if out, err := st.Output(); err != nil || !strings.Contains(string(out), "state=exited") {
		t.Fatalf("status --dir after status: %v\n%s", err, out)
	}
	// An app's own argv keeps what looks like a global flag.
	r := e.ok("--insecure-options=image", "run", busybox(t), "--exec=/bin/echo", "--", "--dir", "--debug")
	if !strings.Contains(r.stdout, "--dir --debug") {
		t.Errorf("the app's arguments lost their flags: %q", r.stdout)
	}
}

func TestRktPrepareQuietAndUUIDFile(t *testing.T) {
	e := newEnv(t)
	r := e.ok("--insecure-options=image", "prepare", "--quiet", busybox(t), "--exec=/bin/sh", "--", "-c", "exit 3")
	uuid := strings.TrimSpace(r.stdout)
	if strings.Count(r.stdout, "\n") != 1 || len(uuid) != 36 {
		t.Fatalf("prepare --quiet stdout = %q, want the UUID alone", r.stdout)
	}
	// Warnings stay (here: the signature checks are off); the
	// messages of a prepare ("using image from file …") go.
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if l != "" && !strings.Contains(l, "signature verification is disabled") {
			t.Errorf("prepare --quiet wrote on stderr: %s", l)
		}
	}
	// prepare --help lists prepare's flags only.
	help := e.ok("prepare", "--help").stdout
	for _, f := range []string{"--net=", "--hostname=", "--interactive ", "--dns=", "--mds-register "} {
		if strings.Contains(help, "   "+f) { // a line of the flag table
			t.Errorf("prepare --help lists %s, which only run and run-prepared take", f)
		}
	}
	if !strings.Contains(help, "   --quiet ") || strings.Contains(e.ok("run", "--help").stdout, "   --quiet ") {
		t.Errorf("--quiet is listed wrong in the help of prepare and run")
	}
	e.fails("give it to run-prepared", "--insecure-options=image", "prepare", "--net=host", busybox(t))
	e.fails("is a flag of nscn prepare", "--insecure-options=image", "run", "--quiet", busybox(t))

	file := filepath.Join(t.TempDir(), "uuid")
	if err := os.WriteFile(file, []byte(uuid+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.run("run-prepared", uuid); r.code != 3 {
		t.Fatalf("run-prepared: exit %d, want the app's 3\n%s", r.code, r.stderr)
	}
	if out := e.ok("status", "--uuid-file="+file).stdout; !strings.Contains(out, "app-busybox=3\n") {
		t.Errorf("status --uuid-file printed:\n%s", out)
	}
	if out := e.ok("status", "--uuid-file="+file, "--format=json").stdout; strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"exit_code":3`) {
		t.Errorf("status --format=json printed:\n%s", out)
	}
	if out := e.ok("cat-manifest", "--uuid-file", file).stdout; !strings.Contains(out, `"PodManifest"`) {
		t.Errorf("cat-manifest --uuid-file printed:\n%s", out)
	}
	aci := filepath.Join(t.TempDir(), "out.aci")
	e.ok("export", "--uuid-file="+file, aci)
	if st, err := os.Stat(aci); err != nil || st.Size() == 0 {
		t.Errorf("export --uuid-file wrote nothing: %v", err)
	}
	e.fails("not running", "enter", "--uuid-file="+file, "true")

	// status keeps the exit status once the pod's mounts are gone, as
	// after a reboot.
	podDir := filepath.Join(e.dir, "pods", "exited-garbage", uuid)
	if _, err := os.Stat(podDir); err != nil {
		podDir = filepath.Join(e.dir, "pods", "run", uuid)
	}
	if err := mountplan.UnmountAll(context.Background(), podDir); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("status", uuid).stdout; !strings.Contains(out, "app-busybox=3\n") {
		t.Errorf("status after the pod's mounts are gone:\n%s", out)
	}
}

func TestRktRunFlags(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	// --set-env-file takes rkt's ";" comments; --environment is rkt's
	// per-app --set-env.
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("; rkt's comment\n# and ours\nA=from file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.ok(shArgs(busybox(t), `echo "A=$A B=$B"`, "--set-env-file="+envFile, "--environment=B=env")...)
	if !strings.Contains(r.stdout, "A=from file B=env") {
		t.Errorf("environment: %q", r.stdout)
	}
	// A later --mount of a target replaces the earlier one, trailing
	// slash or not.
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	for _, d := range []string{one, two} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "which"), []byte(filepath.Base(d)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r = e.ok("--insecure-options=image", "run", "--volume=one,kind=host,source="+one, "--volume=two,kind=host,source="+two,
		"--mount=volume=one,target=/data", busybox(t), "--mount=volume=two,target=/data/",
		"--exec=/bin/cat", "--", "/data/which")
	if strings.TrimSpace(r.stdout) != "two" {
		t.Errorf("/data/which = %q, want the later mount's two", r.stdout)
	}
	// --user-annotation and --user-label land in the pod manifest.
	uuid := strings.TrimSpace(e.ok("--insecure-options=image", "prepare", "--user-annotation=team=web", "--user-label=env=prod", busybox(t)).stdout)
	var pm struct {
		UserAnnotations map[string]string `json:"userAnnotations"`
		UserLabels      map[string]string `json:"userLabels"`
	}
	if err := json.Unmarshal([]byte(e.ok("cat-manifest", uuid).stdout), &pm); err != nil {
		t.Fatal(err)
	}
	if pm.UserAnnotations["team"] != "web" || pm.UserLabels["env"] != "prod" {
		t.Errorf("pod manifest user annotations %v, labels %v", pm.UserAnnotations, pm.UserLabels)
	}
	e.ok("rm", uuid)
	// --hosts-entry=host twice is the host's file, once.
	r = e.ok(shArgs(busybox(t), "cat /etc/hosts", "--hosts-entry=host", "--hosts-entry=host")...)
	if host, _ := os.ReadFile("/etc/hosts"); strings.TrimSpace(r.stdout) != strings.TrimSpace(string(host)) {
		t.Errorf("/etc/hosts in the pod:\n%s\nwant the host's:\n%s", r.stdout, host)
	}
	// --ipc is checked before anything is fetched.
	e.fails("--ipc \"shared\"", "--insecure-options=image", "run", "--ipc=shared", busybox(t))
}

func TestRktRefusedUpFront(t *testing.T) {
	e := newEnv(t)
	pm := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(pm, []byte(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--inherit-env", "--set-env=A=1", "--volume=v,kind=empty", "--mount=volume=v,target=/v"} {
		r := e.fails("conflicting flags set with --pod-manifest", "--insecure-options=image", "run", "--pod-manifest="+pm, flag)
		if r.code != 2 {
			t.Errorf("--pod-manifest with %s: exit %d, want 2", flag, r.code)
		}
	}
	// rkt's hostname test: refused before anything is made, not by
	// systemd-nspawn later.
	r := e.fails("is not a host name", "--insecure-options=image", "run", "--hostname=custom_hostname_setting", busybox(t))
	if r.code != 2 {
		t.Errorf("bad hostname: exit %d, want 2", r.code)
	}
	// rkt's os/arch test.
	for _, tt := range []struct{ os, arch, want string }{
		{"freebsd", "amd64", `bad os "freebsd"`},
		{"linux", "s390x", `bad arch "s390x"`},
		{"", "amd64", "missing os label in the image manifest"},
		{"linux", "", "missing arch label in the image manifest"},
	} {
		aci := rebuiltBusybox(t, func(_ *testing.T, _ string, m map[string]any) { setLabels(m, tt.os, tt.arch) })
		e.fails(tt.want, "--insecure-options=image", "run", aci)
	}
	assertNoPods(t, e)

	// Not root: refused before the data directory exists.
	fresh := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, nscnBin(t), "--dir", fresh, "--insecure-options=image", "run", busybox(t)) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "as root only") {
		t.Errorf("run as nobody: %v\n%s", err, out)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run as nobody left %s: %v", fresh, err)
	}
}

func TestRktPullPolicyNeverKeepsShippedStage1(t *testing.T) {
	e := newEnv(t)
	key := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	// A fresh store: the stage1 that ships with nscn has never been
	// imported, and --pull-policy=never must not keep it out.
	r := e.ok("--insecure-options=image", "run", "--pull-policy=never", key, "--exec=/bin/echo", "--", "ran")
	if !strings.Contains(r.stdout, "ran") {
		t.Errorf("run --pull-policy=never: %q", r.stdout)
	}
	e.fails("pull policy is never", "--insecure-options=image", "run", "--pull-policy=never", filepath.Join(imagesDir(t), "hello.aci"))
}

func TestRktRootWithoutPasswd(t *testing.T) {
	e := newEnv(t)
	aci := rebuiltBusybox(t, func(t *testing.T, layout string, m map[string]any) {
		for _, f := range []string{"etc/passwd", "etc/group"} {
			if err := os.Remove(filepath.Join(layout, "rootfs", f)); err != nil {
				t.Fatal(err)
			}
		}
		app := m["app"].(map[string]any)
		app["user"], app["group"] = "root", "root"
	})
	r := e.ok("--insecure-options=image", "run", aci, "--exec=/bin/sh", "--", "-c", "echo uid=$(id -u) gid=$(id -g)")
	if !strings.Contains(r.stdout, "uid=0 gid=0") {
		t.Errorf("root without /etc/passwd: %q", r.stdout)
	}
}

func TestRktMountThroughDanglingSymlink(t *testing.T) {
	e := newEnv(t)
	aci := rebuiltBusybox(t, func(t *testing.T, layout string, _ map[string]any) {
		if err := os.Symlink("/srv/data", filepath.Join(layout, "rootfs", "data")); err != nil {
			t.Fatal(err)
		}
	})
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("through the link"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.ok("--insecure-options=image", "run", "--volume=d,kind=host,source="+host, aci,
		"--mount=volume=d,target=/data", "--exec=/bin/cat", "--", "/srv/data/f")
	if !strings.Contains(r.stdout, "through the link") {
		t.Errorf("mount through /data -> /srv/data: %q", r.stdout)
	}
}

// noOverlayPod runs a busybox app that writes /f with --no-overlay (and
// the flags given) and checks the pod directory: the copied rootfs holds
// the file, no overlay is left, and the tree store was not written.
func noOverlayPod(t *testing.T, e *env, flags ...string) {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := append([]string{"--insecure-options=image", "run", "--no-overlay", "--uuid-file-save=" + uuidFile}, flags...)
	r := e.ok(append(args, busybox(t), "--exec=/bin/sh", "--", "-c", "echo written > /f; cat /f")...)
	if !strings.Contains(r.stdout, "written") {
		t.Fatalf("--no-overlay app: %q", r.stdout)
	}
	b, err := os.ReadFile(uuidFile) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(b))
	dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", uuid))
	if len(dirs) != 1 {
		t.Fatalf("pod dir of %s: %v", uuid, dirs)
	}
	if err := mountplan.UnmountAll(context.Background(), dirs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "overlay")); !errors.Is(err, fs.ErrNotExist) { //nolint:gosec // G703: the test's own pod directory
		t.Errorf("a --no-overlay pod has an overlay dir: %v", err)
	}
	f := filepath.Join(dirs[0], "stage1", "rootfs", "opt", "stage2", "busybox", "rootfs", "f")
	if b, err := os.ReadFile(f); err != nil || string(b) != "written\n" { //nolint:gosec // G304: a file of the test's pod
		t.Errorf("the copied rootfs lacks the app's file once unmounted: %q, %v", b, err)
	}
	trees, _ := filepath.Glob(filepath.Join(e.dir, "cas", "tree", "*", "rootfs", "f"))
	if len(trees) != 0 {
		t.Errorf("the app wrote into the tree store: %v", trees)
	}
}

func TestRktNoOverlay(t *testing.T) {
	noOverlayPod(t, newEnv(t))
}
