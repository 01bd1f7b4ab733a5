//go:build functional

package security

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil/e2e"
)

// flavor is a stage1 flavor under attack.
type flavor string

const (
	fly    flavor = "fly"
	nspawn flavor = "nspawn"
)

// flavors are the flavors a multi-flavor attack runs against.
var flavors = []flavor{fly, nspawn}

// env is one isolated nscn installation: its own data and config dirs.
type env struct {
	t                  *testing.T
	dir, local, system string
	extraEnv           []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	in := e2e.NewInstall(t)
	return &env{t: t, dir: in.Dir, local: in.Local, system: in.System}
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	return e2e.MustEnv(t, name, "security")
}

func nscnBin(t *testing.T) string    { return mustEnv(t, "NSCN_BIN") }
func nspawnACI(t *testing.T) string  { return mustEnv(t, "NSCN_STAGE1_NSPAWN_ACI") }
func busyboxACI(t *testing.T) string { return filepath.Join(mustEnv(t, "NSCN_IMAGES"), "busybox.aci") }

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.stdout + "\nstderr: " + r.stderr
}

// cmd builds an nscn command with this env's global flags.
func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return e2e.Install{Dir: e.dir, Local: e.local, System: e.system}.Command(ctx, nscnBin(e.t), e.extraEnv, args...)
}

// run runs nscn with stdin and returns its output and exit code.
func (e *env) runIn(stdin io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var r result
	r.stdout, r.stderr, r.code = e2e.Output(e.t, e.cmd(ctx, args...), stdin)
	return r
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn(nil, args...)
}

// ok runs nscn and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("nscn %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// refused runs nscn and fails the test unless it exits with code and a
// stderr that mentions want, without a panic.
func (e *env) refused(code int, want string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		e.t.Fatalf("nscn %s: want exit %d mentioning %q, got %s", strings.Join(args, " "), code, want, r)
	}
	if strings.Contains(r.stderr, "goroutine ") {
		e.t.Fatalf("nscn %s panicked:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// stage1Flag is the flag that picks the flavor's stage1.
func stage1Flag(t *testing.T, f flavor) string {
	t.Helper()
	if f == nspawn {
		return "--stage1-path=" + nspawnACI(t)
	}
	return "--stage1-from-dir=stage1-fly.aci"
}

// runArgs is the argv of `nscn run` with the flavor's stage1, on the
// host's network, then args.
func runArgs(t *testing.T, f flavor, args ...string) []string {
	t.Helper()
	return append([]string{"--insecure-options=image", "run", "--net=host", stage1Flag(t, f)}, args...)
}

// podDir returns the directory of the only pod of e.
func (e *env) podDir() string {
	e.t.Helper()
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	if len(pods) != 1 {
		e.t.Fatalf("want one pod, have %v", pods)
	}
	return pods[0]
}

// start runs `nscn run` with args (runArgs' output), or `nscn app
// sandbox`, in the background and returns the pod's UUID once the pod is
// ready, within a minute. The pod is stopped with stop --force and
// collected when the test ends.
func (e *env) start(args ...string) string {
	e.t.Helper()
	return e.startWithin(time.Minute, args...)
}

// startWithin is start for a pod that may take up to d to save its UUID,
// and d again to be ready (a kvm guest under TCG takes minutes).
func (e *env) startWithin(d time.Duration, args ...string) string {
	e.t.Helper()
	uuidFile := filepath.Join(e.t.TempDir(), "uuid")
	i := slices.Index(args, "run")
	if i < 0 {
		i = slices.Index(args, "sandbox")
	}
	args = slices.Insert(slices.Clone(args), i+1, "--uuid-file-save="+uuidFile)
	ctx, cancel := context.WithTimeout(context.Background(), 3*d)
	c := e.cmd(ctx, args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		cancel()
		e.t.Fatalf("start nscn %s: %v", args[i], err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	e.t.Cleanup(func() {
		select {
		case <-done:
		default:
			if b, err := os.ReadFile(uuidFile); err == nil { //nolint:gosec // G304: the test's own temporary file
				_ = e.cmd(context.Background(), "stop", "--force", strings.TrimSpace(string(b))).Run()
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cancel()
				<-done
			}
		}
		cancel()
		_ = e.run("gc", "--grace-period=0s")
	})
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			e.t.Fatalf("nscn %s ended before the pod was ready: %s", args[i], out.String())
		default:
		}
		b, err := os.ReadFile(uuidFile) //nolint:gosec // G304: the test's own temporary file
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		uuid := strings.TrimSpace(string(b))
		e.ok("status", "--wait-ready="+d.String(), uuid)
		return uuid
	}
	e.t.Fatalf("no pod UUID after %v: %s", d, out.String())
	return ""
}

// file is one file of a test image's rootfs.
type file struct {
	path    string // below rootfs, e.g. "/etc/x"
	content string
	src     string // a host file to copy instead of content
	mode    os.FileMode
	uid     int // owner (uid and gid), root when 0
}

// image is a test image: busybox's rootfs (from busybox.aci), the attacker
// at /attack, files, and a manifest built from app (the "app" object)
// and labels under name.
type image struct {
	name  string
	app   map[string]any
	files []file
	// labels are added to the manifest's os and arch labels.
	labels map[string]string
}

// build packs the image into a gzip ACI with actool and returns its path.
func (im image) build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if err := os.MkdirAll(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xzf", busyboxACI(t), "-C", layout, "rootfs").CombinedOutput(); err != nil { //nolint:gosec // G204: a fixed tool, argv built by the test
		t.Fatalf("unpack busybox.aci: %v\n%s", err, b)
	}
	root := filepath.Join(layout, "rootfs")
	files := append([]file{{path: "/attack", src: mustEnv(t, "NSCN_ATTACK"), mode: 0o755}}, im.files...)
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(f.content)
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				t.Fatal(err)
			}
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, data, mode); err != nil { //nolint:gosec // G703: a path of the test's image layout
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, f.uid, f.uid); err != nil {
			t.Fatal(err)
		}
	}
	m := map[string]any{
		"acKind": "ImageManifest", "acVersion": "0.8.11", "name": im.name,
	}
	labels := []map[string]string{{"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}}
	for _, k := range slices.Sorted(maps.Keys(im.labels)) {
		labels = append(labels, map[string]string{"name": k, "value": im.labels[k]})
	}
	m["labels"] = labels
	if im.app != nil {
		m["app"] = im.app
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layout, "manifest"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.aci")
	if b, err := exec.Command(mustEnv(t, "NSCN_ACTOOL"), "build", "--overwrite", layout, out).CombinedOutput(); err != nil { //nolint:gosec // G204: a fixed tool, argv built by the test
		t.Fatalf("actool build: %v\n%s", err, b)
	}
	return out
}

// app is the "app" object of a manifest that runs argv as user:group.
func app(user, group string, argv ...string) map[string]any {
	return map[string]any{"exec": argv, "user": user, "group": group}
}
