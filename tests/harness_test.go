//go:build functional

package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/e2e"
)

// env is one isolated nscn installation: its own data and config dirs.
type env struct {
	t      *testing.T
	dir    string
	local  string
	system string
	// extraEnv is added to every nscn command's environment.
	extraEnv []string
	// pods are the UUIDs of the env's pods seen so far (notePods).
	pods map[string]bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	in := e2e.NewInstall(t)
	e := &env{t: t, dir: in.Dir, local: in.Local, system: in.System}
	// The generic tests run their pods with the fly flavor, the quicker
	// one: the system config names it the default. The nspawn tests pick
	// their stage1 by flag; TestDefaultStage1IsNspawn removes this file.
	testutil.WriteStage1Default(t, e.system, filepath.Join(filepath.Dir(nscnBin(t)), "stage1-fly.aci"))
	return e
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	return e2e.MustEnv(t, name, "functional")
}

func nscnBin(t *testing.T) string   { return mustEnv(t, "NSCN_BIN") }
func imagesDir(t *testing.T) string { return mustEnv(t, "NSCN_IMAGES") }
func actool(t *testing.T) string    { return mustEnv(t, "NSCN_ACTOOL") }

type result struct {
	stdout, stderr string
	code           int
}

// cmd builds an nscn command with this env's global flags.
func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return e2e.Install{Dir: e.dir, Local: e.local, System: e.system}.Command(ctx, nscnBin(e.t), e.extraEnv, args...)
}

// run runs nscn and returns its output and exit code.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn(nil, args...)
}

func (e *env) runIn(stdin []byte, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	var r result
	r.stdout, r.stderr, r.code = e2e.Output(e.t, e.cmd(ctx, args...), in)
	return r
}

// ok runs nscn and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("nscn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs nscn and fails the test unless it exits non-zero with a
// message containing want.
func (e *env) fails(want string, args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code == 0 {
		e.t.Fatalf("nscn %s: succeeded, want failure\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		e.t.Fatalf("nscn %s: stderr %q does not mention %q", strings.Join(args, " "), r.stderr, want)
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		e.t.Fatalf("nscn %s panicked:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// snapshot lists every file under the store (excluding lock files and the
// database file, whose pages a read may touch; its content is listed through
// nscn instead) with its size, so a
// test can assert that a failed command left the store as it was.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	cas := filepath.Join(e.dir, "cas")
	_ = filepath.Walk(cas, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(cas, p)
		// Directories an open store creates empty are not state.
		if fi.IsDir() || strings.HasSuffix(rel, ".lock") || rel == "db/index.db" {
			return nil
		}
		fmt.Fprintf(&b, "%s %d", rel, fi.Size())
		b.WriteByte('\n')
		return nil
	})
	// The index content, through nscn itself.
	r := e.run("image", "list", "--format=json")
	b.WriteString(r.stdout)
	return b.String()
}

// imageKey is the ID rkt prints for an ACI: sha512- and the first 64 hex
// digits of the sha512 of the uncompressed tar, computed with the host's
// own tools as a user would.
func imageKey(t *testing.T, aci string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "gzip -dc < \"$1\" | sha512sum", "sh", aci).Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	if err != nil {
		t.Fatalf("hash %s: %v", aci, err)
	}
	return "sha512-" + strings.Fields(string(out))[0][:64]
}

func execOutput(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	return string(b), err
}

func busybox(t *testing.T) string { return filepath.Join(imagesDir(t), "busybox.aci") }

// assertNoPods fails if any pod directory exists.
func assertNoPods(t *testing.T, e *env) {
	t.Helper()
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	if len(pods) != 0 {
		t.Fatalf("pods left behind: %v", pods)
	}
}

// statusMap runs nscn status and returns its key=value lines.
func statusMap(t *testing.T, e *env, uuid string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(e.ok("status", uuid).stdout))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// appStderr is stderr without nscn's own log records (level=...), which
// the run prints around the apps' output: what the apps wrote.
func appStderr(stderr string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(l, "level=") && !strings.HasPrefix(l, "time=") {
			b.WriteString(l)
		}
	}
	return b.String()
}
