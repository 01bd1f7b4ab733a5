package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/tree"
)

// The tests here drive the pod commands in-process over pod directories
// made with internal/pod, as nscn prepare and run leave them, with a fake
// stage1: shell scripts that record their working directory and argv and
// exit with a chosen status. That is a real stage1 as far as enter, stop,
// rm and gc are concerned. They do not run in parallel: urfave/cli writes
// its global help flag on every run.

// testPodCommands are the commands under test, added to the app for as
// long as commands() does not list them.
func testPodCommands() []*cli.Command {
	return []*cli.Command{
		listCommand(), statusCommand(), catManifestCommand(), enterCommand(),
		stopCommand(), rmCommand(), gcCommand(), exportCommand(),
	}
}

// podFixture is a data directory and a recording fake stage1.
type podFixture struct {
	t     *testing.T
	dir   string // --dir
	local string // --local-config
	rec   string // the fake stage1 records its calls and reads its statuses here
	// stage1Trees are the fake stage1's rendered trees in the store, by
	// interface version.
	stage1Trees map[int]*tree.Tree
}

// podCopyCalls is where the scripts planted in a pod's own copy of the
// stage1 (stage1/rootfs) record that they ran: stage0 must never run them.
const podCopyCalls = "pod-copy.calls"

func newPodFixture(t *testing.T) *podFixture {
	t.Helper()
	base := t.TempDir()
	f := &podFixture{t: t, dir: filepath.Join(base, "data"), local: filepath.Join(base, "etc"), rec: filepath.Join(base, "rec"), stage1Trees: map[int]*tree.Tree{}}
	if err := os.MkdirAll(f.rec, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(f.rec, podCopyCalls)); err == nil {
			t.Errorf("stage0 ran entrypoints of a pod's own copy of its stage1:\n%s", b)
		}
	})
	return f
}

// run runs nscn in-process on the fixture's data directory.
func (f *podFixture) run(args ...string) (stdout, stderr string, err error) {
	f.t.Helper()
	var out, errb bytes.Buffer
	app := NewApp(strings.NewReader(""), &out, &errb)
	have := make(map[string]bool)
	for _, c := range app.Commands {
		have[c.Name] = true
	}
	for _, c := range testPodCommands() {
		if !have[c.Name] {
			app.Commands = append(app.Commands, c)
		}
	}
	full := append([]string{"nscn", "--dir", f.dir, "--local-config", f.local}, args...)
	err = app.RunContext(f.t.Context(), full)
	return out.String(), errb.String(), err
}

// mustRun is run that fails the test on error.
func (f *podFixture) mustRun(args ...string) string {
	f.t.Helper()
	out, errOut, err := f.run(args...)
	if err != nil {
		f.t.Fatalf("nscn %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fakeEntrypoints are the entrypoints of the fake stage1.
var fakeEntrypoints = map[string]string{
	stage1abi.AnnotationRun:   "/fake/run",
	stage1abi.AnnotationEnter: "/fake/enter",
	stage1abi.AnnotationStop:  "/fake/stop",
	stage1abi.AnnotationGC:    "/fake/gc",
}

// writeStage1 writes the fake stage1 into a pod directory as prepare
// does: its manifest, which declares interface version 5, and the ID of
// its rendered tree in the store, which holds one script per entrypoint. A
// script appends "<cwd>|<arg>|<arg>…" to <rec>/<name>.calls, prints
// "<name> ran" on stdout and exits with the number in <rec>/<name>.status
// (0 if absent). The pod's own copy of the stage1 (stage1/rootfs, which
// the pod can write) gets scripts that record to <rec>/pod-copy.calls.
func (f *podFixture) writeStage1(podDir string) { f.writeStage1Version(podDir, 5) }

// writeStage1Version is writeStage1 with a stage1 that declares the
// given interface version.
func (f *podFixture) writeStage1Version(podDir string, version int) {
	f.t.Helper()
	for _, ep := range fakeEntrypoints {
		writeTestFile(f.t, filepath.Join(podDir, stage1abi.Stage1RootfsRel, ep), f.podCopyScript(), 0o755)
	}
	writeTestFile(f.t, filepath.Join(podDir, stage1abi.Stage1ManifestRel), string(f.stage1ManifestVersion(version)), 0o644)
	writeTestFile(f.t, filepath.Join(podDir, stage1abi.Stage1TreeIDFile), f.stage1Tree(version).Key, 0o644)
}

// stage1Tree renders the fake stage1 of an interface version into the
// fixture's store, once.
func (f *podFixture) stage1Tree(version int) *tree.Tree {
	f.t.Helper()
	if t, ok := f.stage1Trees[version]; ok {
		return t
	}
	// In a fixed order: the same stage1 is the same image.
	var files []testEntry
	for _, ep := range slices.Sorted(maps.Values(fakeEntrypoints)) {
		files = append(files, testEntry{name: strings.TrimPrefix(ep, "/"), body: f.stage1Script(filepath.Base(ep)), mode: 0o755})
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(f.stage1ManifestVersion(version), &m); err != nil {
		f.t.Fatal(err)
	}
	t := renderTestImage(f.t, f.dir, &m, files)
	f.stage1Trees[version] = t
	return t
}

// podCopyScript is what the pod's own copy of the stage1 holds.
func (f *podFixture) podCopyScript() string {
	return fmt.Sprintf("#!/bin/sh\necho \"$0 $*\" >> '%s/%s'\n", f.rec, podCopyCalls)
}

// stage1Manifest is the image manifest of the fake stage1.
func (f *podFixture) stage1Manifest() []byte { return f.stage1ManifestVersion(5) }

func (f *podFixture) stage1ManifestVersion(version int) []byte {
	f.t.Helper()
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("example.com/stage1-fake")
	m.Annotations.Set(*types.MustACIdentifier(stage1abi.AnnotationInterfaceVersion), strconv.Itoa(version))
	for _, ann := range slices.Sorted(maps.Keys(fakeEntrypoints)) {
		m.Annotations.Set(*types.MustACIdentifier(ann), fakeEntrypoints[ann])
	}
	b, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// stage1Script is the fake entrypoint name.
func (f *podFixture) stage1Script(name string) string {
	return fmt.Sprintf(`#!/bin/sh
{ printf '%%s' "$(pwd -P)"; for a in "$@"; do printf '|%%s' "$a"; done; printf '\n'; } >> '%[1]s/%[2]s.calls'
echo '%[2]s ran'
st=0
[ -f '%[1]s/%[2]s.status' ] && st=$(cat '%[1]s/%[2]s.status')
exit "$st"
`, f.rec, name)
}

// calls returns what the fake entrypoint name recorded, one call a line.
func (f *podFixture) calls(name string) []string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.rec, name+".calls")) //nolint:gosec // G304: a file the test made
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// setStatus makes the fake entrypoint name exit with st.
func (f *podFixture) setStatus(name string, st int) {
	f.t.Helper()
	writeTestFile(f.t, filepath.Join(f.rec, name+".status"), strconv.Itoa(st), 0o644)
}

func (f *podFixture) resetCalls() {
	f.t.Helper()
	for ep := range fakeEntrypoints {
		name := filepath.Base(fakeEntrypoints[ep])
		for _, suffix := range []string{".calls", ".status"} {
			if err := os.Remove(filepath.Join(f.rec, name+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				f.t.Fatal(err)
			}
		}
	}
}

func writeTestFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// testImageID is a well-formed image ID for pod manifests.
var testImageID = "sha512-" + strings.Repeat("ab", 32)

// podManifest is a minimal pod manifest with one app per name, running the
// image example.com/<name>, version 1.0.
func podManifest(t testing.TB, apps ...string) []byte {
	t.Helper()
	pm := schema.BlankPodManifest()
	for _, a := range apps {
		var id types.Hash
		if err := id.Set(testImageID); err != nil {
			t.Fatal(err)
		}
		pm.Apps = append(pm.Apps, schema.RuntimeApp{
			Name: *types.MustACName(a),
			Image: schema.RuntimeImage{
				Name:   types.MustACIdentifier("example.com/" + a),
				ID:     id,
				Labels: types.Labels{{Name: "version", Value: "1.0"}},
			},
			App: &types.App{Exec: types.Exec{"/bin/" + a}, User: "0", Group: "0"},
		})
	}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// podSpec says how mkPod leaves a pod.
type podSpec struct {
	state pod.State // AbortedPrepare, Prepared, Running or Exited
	apps  []string  // default: one app, "web"
	// statuses are the exit statuses stage1 recorded (Exited pods).
	statuses map[string]int
	// noPID leaves a Running pod without a pid file.
	noPID bool
	// treeKey is the rendered tree recorded for every app.
	treeKey string
	// stage1Version is the interface version the fake stage1 declares;
	// 0 means 5, which predates the ready file.
	stage1Version int
	// ready writes the ready file of a Running or Exited pod.
	ready bool
}

// mkPod makes a pod through the pod API. A Running pod is returned
// holding its lock, as stage1 would; Unlock makes it exit. Other pods are
// returned unlocked.
func (f *podFixture) mkPod(s podSpec) *pod.Pod {
	f.t.Helper()
	t, ctx := f.t, f.t.Context()
	if s.apps == nil {
		s.apps = []string{"web"}
	}
	if s.treeKey == "" {
		s.treeKey = "deps-sha512-" + strings.Repeat("0", 64)
	}
	p, err := pod.NewPod(ctx, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Unlock() })
	if s.state == pod.AbortedPrepare {
		if err := p.Unlock(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := p.ToPreparing(ctx); err != nil {
		t.Fatal(err)
	}
	if s.stage1Version == 0 {
		s.stage1Version = 5
	}
	f.writeStage1Version(p.Path, s.stage1Version)
	for _, a := range s.apps {
		im := schema.BlankImageManifest()
		im.Name = *types.MustACIdentifier("example.com/" + a)
		im.Labels = types.Labels{{Name: "version", Value: "1.0"}}
		im.Dependencies = types.Dependencies{{ImageName: *types.MustACIdentifier("example.com/base")}}
		im.PathWhitelist = []string{"/bin", "/etc"}
		b, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		info := filepath.Join(p.Path, stage1abi.AppInfoDir(a))
		writeTestFile(t, filepath.Join(info, stage1abi.AppManifestFile), string(b), 0o644)
		writeTestFile(t, filepath.Join(info, stage1abi.AppTreeIDFile), s.treeKey, 0o644)
	}
	writeTestFile(t, filepath.Join(p.Path, stage1abi.PodManifestFile), string(podManifest(t, s.apps...)), 0o644)
	if err := p.ToPrepared(ctx); err != nil {
		t.Fatal(err)
	}
	if s.state == pod.Prepared {
		return p
	}
	if err := p.ToRun(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.noPID {
		writeTestFile(t, filepath.Join(p.Path, stage1abi.PIDFile), strconv.Itoa(os.Getpid())+"\n", 0o644)
	}
	if s.ready {
		writeTestFile(t, filepath.Join(p.Path, stage1abi.ReadyFile), "", 0o644)
	}
	if s.state == pod.Running {
		return p
	}
	for app, st := range s.statuses {
		writeTestFile(t, filepath.Join(p.Path, stage1abi.AppStatusFile(app)), strconv.Itoa(st)+"\n", 0o644)
	}
	if err := p.Unlock(); err != nil {
		t.Fatal(err)
	}
	return p
}

// ambiguousPrefix makes aborted pods until two pods share their first
// UUID character, and returns it.
func (f *podFixture) ambiguousPrefix() string {
	f.t.Helper()
	seen := make(map[byte]bool)
	pods, err := pod.List(f.t.Context(), f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, p := range pods {
		if seen[p.UUID[0]] {
			return p.UUID[:1]
		}
		seen[p.UUID[0]] = true
	}
	for range 17 {
		p := f.mkPod(podSpec{state: pod.AbortedPrepare})
		if seen[p.UUID[0]] {
			return p.UUID[:1]
		}
		seen[p.UUID[0]] = true
	}
	f.t.Fatal("no two pods share a first character")
	return ""
}

func podExists(t *testing.T, dataDir, uuid string) bool {
	t.Helper()
	_, err := pod.Get(t.Context(), dataDir, uuid)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func podState(t *testing.T, dataDir, uuid string) pod.State {
	t.Helper()
	p, err := pod.Get(t.Context(), dataDir, uuid)
	if err != nil {
		t.Fatal(err)
	}
	return p.State
}

// checkErr checks err against a wanted class and, when status is not 0,
// the status of an ExitStatusErr. Neither means success.
func checkErr(t *testing.T, err, class error, status int) {
	t.Helper()
	if class == nil && status == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if class != nil && !errors.Is(err, class) {
		t.Fatalf("error = %v, want class %v", err, class)
	}
	if status != 0 {
		var es ExitStatusErr
		if !errors.As(err, &es) || es.Status != status {
			t.Fatalf("error = %#v, want ExitStatusErr with status %d", err, status)
		}
	}
}

func TestPodsList(t *testing.T) {
	f := newPodFixture(t)
	aborted := f.mkPod(podSpec{state: pod.AbortedPrepare})
	prepared := f.mkPod(podSpec{state: pod.Prepared})
	running := f.mkPod(podSpec{state: pod.Running})
	exited := f.mkPod(podSpec{state: pod.Exited, apps: []string{"web", "db"}, statuses: map[string]int{"web": 0, "db": 3}})
	all := map[string]*pod.Pod{"aborted prepare": aborted, "prepared": prepared, "running": running, "exited": exited}

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{
			name: "table",
			args: []string{"list"},
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				if len(lines) != 5 || !strings.HasPrefix(lines[0], "UUID") || !strings.Contains(lines[0], "IMAGE NAME") {
					t.Fatalf("want a header and 4 rows:\n%s", out)
				}
				for state, p := range all {
					row := rowOf(t, lines, p.UUID[:8])
					if !strings.Contains(row, "  "+state+"  ") {
						t.Errorf("row of %s pod lacks its state: %q", state, row)
					}
				}
				if row := rowOf(t, lines, exited.UUID[:8]); !strings.Contains(row, "web,db") || !strings.Contains(row, "example.com/web:1.0,example.com/db:1.0") {
					t.Errorf("exited pod row lacks its apps and images: %q", row)
				}
				if row := rowOf(t, lines, aborted.UUID[:8]); !strings.Contains(row, " - ") {
					t.Errorf("aborted pod row should show - for missing apps: %q", row)
				}
			},
		},
		{
			name: "no legend, full",
			args: []string{"list", "--no-legend", "--full"},
			check: func(t *testing.T, out string) {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				if len(lines) != 4 || strings.HasPrefix(lines[0], "UUID") {
					t.Fatalf("want 4 rows and no header:\n%s", out)
				}
				row := rowOf(t, lines, running.UUID)
				if !strings.Contains(row, time.Now().Format("2006-01-02T")) {
					t.Errorf("--full should print RFC 3339 times: %q", row)
				}
			},
		},
		{
			name: "json",
			args: []string{"list", "--format=json"},
			check: func(t *testing.T, out string) {
				var got []map[string]any
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				byID := make(map[string]map[string]any)
				for _, o := range got {
					byID[o["uuid"].(string)] = o
				}
				if len(byID) != 4 {
					t.Fatalf("want 4 pods, got %d", len(byID))
				}
				r := byID[running.UUID]
				if r["state"] != "running" || r["pid"] != float64(os.Getpid()) || r["started"] == nil || r["finished"] != nil {
					t.Errorf("running pod: %v", r)
				}
				if app := r["apps"].([]any)[0].(map[string]any); app["state"] != "running" || app["exit_code"] != nil {
					t.Errorf("app of running pod: %v", app)
				}
				e := byID[exited.UUID]
				if e["state"] != "exited" || e["pid"] != nil || e["finished"] == nil || e["created"] == nil {
					t.Errorf("exited pod: %v", e)
				}
				apps := e["apps"].([]any)
				want := []map[string]any{
					{"name": "web", "image_name": "example.com/web", "image_id": testImageID, "state": "exited", "exit_code": float64(0)},
					{"name": "db", "image_name": "example.com/db", "image_id": testImageID, "state": "exited", "exit_code": float64(3)},
				}
				for i, w := range want {
					got := apps[i].(map[string]any)
					for k, v := range w {
						if got[k] != v {
							t.Errorf("app %d: %s = %v, want %v", i, k, got[k], v)
						}
					}
				}
				if a := byID[aborted.UUID]; a["state"] != "aborted prepare" || len(a["apps"].([]any)) != 0 || a["started"] != nil {
					t.Errorf("aborted pod: %v", a)
				}
				if p := byID[prepared.UUID]; p["state"] != "prepared" || p["started"] != nil {
					t.Errorf("prepared pod: %v", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, f.mustRun(tt.args...))
		})
	}
	if got := podState(t, f.dir, running.UUID); got != pod.Running {
		t.Fatalf("list disturbed the running pod: it is %s", got)
	}
}

func rowOf(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no row starts with %s:\n%s", prefix, strings.Join(lines, "\n"))
	return ""
}

func TestPodsListEmpty(t *testing.T) {
	f := newPodFixture(t)
	if out := f.mustRun("list", "--format=json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("want [], got %q", out)
	}
	if out := f.mustRun("list", "--no-legend"); out != "" {
		t.Fatalf("want nothing, got %q", out)
	}
}

// TestPodsListFast lists 1,000 exited pods. The goal is well under 200 ms;
// the bound is loose so that a loaded CI machine does not fail it.
func TestPodsListFast(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1000 pods")
	}
	const n, bound = 1000, 2 * time.Second
	f := newPodFixture(t)
	makeExitedPods(t, f.dir, n)
	for _, format := range []string{"table", "json"} {
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			out := f.mustRun("list", "--no-legend", "--format="+format)
			best = min(best, time.Since(start))
			if format == "table" && strings.Count(out, "\n") != n {
				t.Fatalf("want %d rows, got %d", n, strings.Count(out, "\n"))
			}
		}
		t.Logf("list --format=%s of %d exited pods: %v", format, n, best)
		if best > bound {
			t.Errorf("list --format=%s of %d pods took %v, want well under 200ms (bound %v)", format, n, best, bound)
		}
	}
}

// makeExitedPods makes n exited pods with a one-app manifest, in parallel
// (each transition syncs its directories).
func makeExitedPods(t testing.TB, dir string, n int) {
	t.Helper()
	ctx := t.Context()
	manifest := podManifest(t, "web")
	work := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range work {
				errs <- func() error {
					p, err := pod.NewPod(ctx, dir)
					if err != nil {
						return err
					}
					if err := p.ToPreparing(ctx); err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(p.Path, stage1abi.PodManifestFile), manifest, 0o644); err != nil {
						return err
					}
					if err := p.ToPrepared(ctx); err != nil {
						return err
					}
					if err := p.ToRun(ctx); err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(p.Path, stage1abi.PIDFile), []byte("1\n"), 0o644); err != nil {
						return err
					}
					if err := os.MkdirAll(filepath.Join(p.Path, filepath.Dir(stage1abi.AppStatusFile("web"))), 0o755); err != nil {
						return err
					}
					if err := os.WriteFile(filepath.Join(p.Path, stage1abi.AppStatusFile("web")), []byte("0\n"), 0o644); err != nil {
						return err
					}
					return p.Unlock()
				}()
			}
		})
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkPodsList(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	makeExitedPods(b, dir, 1000)
	for _, format := range []string{"table", "json"} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				app := NewApp(strings.NewReader(""), io.Discard, io.Discard)
				app.Commands = append(app.Commands, listCommand())
				if err := app.Run([]string{"nscn", "--dir", dir, "list", "--format=" + format}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestPodsStatus(t *testing.T) {
	f := newPodFixture(t)
	running := f.mkPod(podSpec{state: pod.Running})
	exited := f.mkPod(podSpec{state: pod.Exited, apps: []string{"web", "db"}, statuses: map[string]int{"web": 0, "db": 137}})
	prepared := f.mkPod(podSpec{state: pod.Prepared})
	pid := strconv.Itoa(os.Getpid())

	tests := []struct {
		name    string
		args    []string
		want    []string // lines that must be present, in order
		notWant []string // line prefixes that must be absent
	}{
		{
			name:    "running",
			args:    []string{"status", running.UUID},
			want:    []string{"state=running", "created=", "started=", "pid=" + pid, "exited=false"},
			notWant: []string{"finished=", "app-"},
		},
		{
			name: "exited",
			args: []string{"status", exited.UUID[:13]},
			want: []string{"state=exited", "created=", "started=", "finished=", "exited=true", "app-web=0", "app-db=137"},
			// An exited pod's pid is stale.
			notWant: []string{"pid="},
		},
		{
			name:    "prepared",
			args:    []string{"status", prepared.UUID},
			want:    []string{"state=prepared", "created="},
			notWant: []string{"started=", "pid=", "exited=", "app-"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := f.mustRun(tt.args...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			i := 0
			for _, l := range lines {
				if i < len(tt.want) && strings.HasPrefix(l, tt.want[i]) {
					i++
				}
				for _, nw := range tt.notWant {
					if strings.HasPrefix(l, nw) {
						t.Errorf("unexpected line %q", l)
					}
				}
			}
			if i != len(tt.want) {
				t.Errorf("missing line %q (in this order: %q) in:\n%s", tt.want[i], tt.want, out)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var got podJSON
		if err := json.Unmarshal([]byte(f.mustRun("status", "--format=json", exited.UUID)), &got); err != nil {
			t.Fatal(err)
		}
		if got.UUID != exited.UUID || got.State != "exited" || len(got.Apps) != 2 || got.Apps[1].ExitCode == nil || *got.Apps[1].ExitCode != 137 || got.Finished == "" {
			t.Fatalf("status json = %+v", got)
		}
		if _, err := time.Parse(time.RFC3339Nano, got.Created); err != nil {
			t.Fatalf("created: %v", err)
		}
	})
}

func TestPodsStatusWait(t *testing.T) {
	f := newPodFixture(t)

	t.Run("wait returns when the lock is released", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running, statuses: map[string]int{"web": 4}})
		const hold = 200 * time.Millisecond
		released := make(chan error, 1)
		go func() {
			time.Sleep(hold)
			writeTestFile(t, filepath.Join(p.Path, stage1abi.AppStatusFile("web")), "4\n", 0o644)
			released <- p.Unlock()
		}()
		start := time.Now()
		out := f.mustRun("status", "--wait", p.UUID)
		if err := <-released; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < hold {
			t.Fatalf("status --wait returned after %v, before the lock was released (%v)", d, hold)
		}
		if !strings.Contains(out, "state=exited\n") || !strings.Contains(out, "app-web=4\n") {
			t.Fatalf("want the exited status:\n%s", out)
		}
	})

	t.Run("wait with a limit gives up", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running})
		start := time.Now()
		out, _, err := f.run("status", "--wait=100ms", p.UUID)
		checkErr(t, err, errdefs.ErrUnavailable, 0)
		if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
			t.Fatalf("gave up after %v", d)
		}
		if out != "" {
			t.Fatalf("nothing should be printed on timeout: %q", out)
		}
	})

	t.Run("wait on an exited pod returns at once", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Exited})
		if out := f.mustRun("status", "--wait=10s", p.UUID); !strings.HasPrefix(out, "state=exited\n") {
			t.Fatalf("got:\n%s", out)
		}
	})

	t.Run("wait-ready waits for the pid", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running, noPID: true})
		errc := make(chan error, 1)
		go func() {
			time.Sleep(100 * time.Millisecond)
			// Replaced atomically, as a stage1 writes it: status polls
			// the file meanwhile and must never see it half written.
			errc <- atomicfile.Write(p.Path, stage1abi.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"))
		}()
		defer func() {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}()
		out := f.mustRun("status", "--wait-ready", p.UUID)
		if !strings.Contains(out, "state=running\n") || !strings.Contains(out, "pid="+strconv.Itoa(os.Getpid())+"\n") {
			t.Fatalf("got:\n%s", out)
		}
	})

	t.Run("wait-ready with a limit on a prepared pod gives up", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Prepared})
		_, _, err := f.run("status", "--wait-ready=100ms", p.UUID)
		checkErr(t, err, errdefs.ErrUnavailable, 0)
	})

	t.Run("wait-ready on an exited pod fails", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Exited})
		_, _, err := f.run("status", "--wait-ready", p.UUID)
		checkErr(t, err, errdefs.ErrFailedPrecondition, 0)
	})

	// A stage1 of interface version 8 says when the pod is ready: the pid
	// alone is not enough.
	t.Run("wait-ready waits for the ready file", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running, stage1Version: stage1abi.InterfaceVersionReady})
		const hold = 200 * time.Millisecond
		go func() {
			time.Sleep(hold)
			writeTestFile(t, filepath.Join(p.Path, stage1abi.ReadyFile), "", 0o644)
		}()
		start := time.Now()
		out := f.mustRun("status", "--wait-ready=10s", p.UUID)
		if d := time.Since(start); d < hold {
			t.Fatalf("status --wait-ready returned after %v, before the pod was ready (%v)", d, hold)
		}
		if !strings.Contains(out, "state=running\n") || !strings.Contains(out, "ready=true\n") {
			t.Fatalf("got:\n%s", out)
		}
	})

	t.Run("wait-ready with a limit on a running pod that is not ready gives up", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running, stage1Version: stage1abi.InterfaceVersionReady})
		start := time.Now()
		out, _, err := f.run("status", "--wait-ready=300ms", p.UUID)
		checkErr(t, err, errdefs.ErrUnavailable, 0)
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("gave up after %v", d)
		}
		if want := "gave up after 300ms: the pod runs, but its apps have not all started"; !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
		if out != "" {
			t.Fatalf("nothing should be printed on timeout: %q", out)
		}
	})

	t.Run("wait-ready fails when the pod exits before it is ready", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Running, stage1Version: stage1abi.InterfaceVersionReady})
		go func() {
			time.Sleep(100 * time.Millisecond)
			_ = p.Unlock()
		}()
		_, _, err := f.run("status", "--wait-ready=10s", p.UUID)
		checkErr(t, err, errdefs.ErrFailedPrecondition, 0)
		if !strings.Contains(err.Error(), "pod is exited") {
			t.Fatalf("error %q does not say the pod exited", err)
		}
	})

	t.Run("an exited pod is not ready, whatever its ready file says", func(t *testing.T) {
		p := f.mkPod(podSpec{state: pod.Exited, stage1Version: stage1abi.InterfaceVersionReady, ready: true})
		_, _, err := f.run("status", "--wait-ready", p.UUID)
		checkErr(t, err, errdefs.ErrFailedPrecondition, 0)
	})
}

func TestPodsStatusReady(t *testing.T) {
	f := newPodFixture(t)
	tests := []struct {
		name string
		spec podSpec
		want string // the ready line; empty: none
	}{
		{name: "old stage1, running with a pid", spec: podSpec{state: pod.Running}, want: "ready=true"},
		{name: "old stage1, running without a pid", spec: podSpec{state: pod.Running, noPID: true}, want: "ready=false"},
		{name: "ready stage1, not ready yet", spec: podSpec{state: pod.Running, stage1Version: stage1abi.InterfaceVersionReady}, want: "ready=false"},
		{name: "ready stage1, ready", spec: podSpec{state: pod.Running, stage1Version: stage1abi.InterfaceVersionReady, ready: true}, want: "ready=true"},
		{name: "exited", spec: podSpec{state: pod.Exited, stage1Version: stage1abi.InterfaceVersionReady, ready: true}},
		{name: "prepared", spec: podSpec{state: pod.Prepared}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.mkPod(tt.spec)
			out := f.mustRun("status", p.UUID)
			var lines []string
			for l := range strings.SplitSeq(out, "\n") {
				if strings.HasPrefix(l, "ready=") {
					lines = append(lines, l)
				}
			}
			if got := strings.Join(lines, ","); got != tt.want {
				t.Fatalf("ready lines %q, want %q in:\n%s", got, tt.want, out)
			}
			var js podJSON
			if err := json.Unmarshal([]byte(f.mustRun("status", "--format=json", p.UUID)), &js); err != nil {
				t.Fatal(err)
			}
			got := ""
			if js.Ready != nil {
				got = "ready=" + strconv.FormatBool(*js.Ready)
			}
			if got != tt.want {
				t.Fatalf("json ready %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWaitFlag(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    waitFlag
		wantErr bool
	}{
		{name: "bare", in: "true", want: waitFlag{on: true}},
		{name: "off", in: "false", want: waitFlag{}},
		{name: "duration", in: "1m30s", want: waitFlag{on: true, timeout: 90 * time.Second}},
		{name: "zero", in: "0s", wantErr: true},
		{name: "negative", in: "-1s", wantErr: true},
		{name: "garbage", in: "soon", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w waitFlag
			err := w.Set(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Set(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil && w != tt.want {
				t.Fatalf("Set(%q) = %+v, want %+v", tt.in, w, tt.want)
			}
		})
	}
}

func TestPodsEnter(t *testing.T) {
	f := newPodFixture(t)
	one := f.mkPod(podSpec{state: pod.Running})
	two := f.mkPod(podSpec{state: pod.Running, apps: []string{"web", "db"}})
	exited := f.mkPod(podSpec{state: pod.Exited})
	pid := strconv.Itoa(os.Getpid())
	argv := func(p *pod.Pod, app string, cmd ...string) string {
		return strings.Join(append([]string{p.Path, "--pid=" + pid, "--appname=" + app, "--"}, cmd...), "|")
	}

	tests := []struct {
		name     string
		args     []string
		status   int    // the enter entrypoint's exit status
		wantArgv string // "" when enter must not run
		class    error
		exit     int // the ExitStatus wanted
	}{
		{name: "default app and shell", args: []string{"enter", one.UUID}, wantArgv: argv(one, "web", "/bin/sh")},
		{name: "command after the UUID", args: []string{"enter", one.UUID[:8], "ls", "-l", "/"}, wantArgv: argv(one, "web", "ls", "-l", "/")},
		{name: "double dash after the UUID", args: []string{"enter", one.UUID, "--", "ls", "-l"}, wantArgv: argv(one, "web", "ls", "-l")},
		{name: "app chosen", args: []string{"enter", "--app=db", two.UUID, "true"}, wantArgv: argv(two, "db", "true")},
		{name: "status passed through", args: []string{"enter", one.UUID, "false"}, status: 3, wantArgv: argv(one, "web", "false"), exit: 3},
		{name: "several apps, none chosen", args: []string{"enter", two.UUID}, class: errdefs.ErrInvalidArgument},
		{name: "unknown app", args: []string{"enter", "--app=nope", one.UUID}, class: errdefs.ErrInvalidArgument},
		{name: "pod not running", args: []string{"enter", exited.UUID}, class: errdefs.ErrFailedPrecondition},
		{name: "no UUID", args: []string{"enter"}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.resetCalls()
			f.setStatus("enter", tt.status)
			out, _, err := f.run(tt.args...)
			switch {
			case tt.exit != 0:
				var st ExitStatus
				if !errors.As(err, &st) || int(st) != tt.exit {
					t.Fatalf("error = %v, want ExitStatus(%d)", err, tt.exit)
				}
			default:
				checkErr(t, err, tt.class, 0)
			}
			calls := f.calls("enter")
			if tt.wantArgv == "" {
				if len(calls) != 0 {
					t.Fatalf("enter ran: %q", calls)
				}
				return
			}
			if len(calls) != 1 || calls[0] != tt.wantArgv {
				t.Fatalf("enter calls = %q, want [%q]", calls, tt.wantArgv)
			}
			if out != "enter ran\n" {
				t.Fatalf("stdout = %q, want the entrypoint's output", out)
			}
		})
	}
}

func TestPodsStop(t *testing.T) {
	f := newPodFixture(t)
	running := f.mkPod(podSpec{state: pod.Running})
	exited := f.mkPod(podSpec{state: pod.Exited})
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	writeTestFile(t, uuidFile, running.UUID+"\n", 0o644)

	tests := []struct {
		name      string
		args      []string
		status    int
		wantCalls []string
		wantOut   string
		class     error
		exit      int
		stderr    string
	}{
		{name: "stop", args: []string{"stop", running.UUID}, wantCalls: []string{running.Path + "|" + running.UUID}, wantOut: running.UUID + "\n"},
		{name: "force", args: []string{"stop", "--force", running.UUID[:8]}, wantCalls: []string{running.Path + "|--force|" + running.UUID}, wantOut: running.UUID + "\n"},
		{name: "uuid file", args: []string{"stop", "--uuid-file", uuidFile}, wantCalls: []string{running.Path + "|" + running.UUID}, wantOut: running.UUID + "\n"},
		{
			name: "one pod not running", args: []string{"stop", exited.UUID, running.UUID},
			wantCalls: []string{running.Path + "|" + running.UUID}, wantOut: running.UUID + "\n",
			class: errdefs.ErrFailedPrecondition, exit: 254,
		},
		{
			name: "entrypoint fails", args: []string{"stop", running.UUID}, status: 1,
			wantCalls: []string{running.Path + "|" + running.UUID}, exit: 254, stderr: "exited with status 1",
		},
		{name: "unknown pod", args: []string{"stop", "00000000-0000-4000-8000-000000000000"}, class: errdefs.ErrNotFound, exit: 254},
		{name: "not a UUID", args: []string{"stop", "xyz"}, class: errdefs.ErrInvalidArgument, exit: 2},
		{name: "no UUID", args: []string{"stop"}, class: errdefs.ErrInvalidArgument},
		{name: "UUID and uuid file", args: []string{"stop", "--uuid-file", uuidFile, running.UUID}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.resetCalls()
			f.setStatus("stop", tt.status)
			out, errOut, err := f.run(tt.args...)
			checkErr(t, err, tt.class, tt.exit)
			if !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("stderr = %q, want %q in it", errOut, tt.stderr)
			}
			if got := f.calls("stop"); !slices.Equal(got, tt.wantCalls) {
				t.Fatalf("stop calls = %q, want %q", got, tt.wantCalls)
			}
			if out != tt.wantOut {
				t.Fatalf("stdout = %q, want %q", out, tt.wantOut)
			}
		})
	}
	if got := podState(t, f.dir, running.UUID); got != pod.Running {
		t.Fatalf("the fake stop must not change the state, got %s", got)
	}
}

func TestPodsRm(t *testing.T) {
	f := newPodFixture(t)

	tests := []struct {
		name    string
		spec    podSpec
		gcCalls int // stage1 gc calls wanted
		class   error
		gone    bool
	}{
		{name: "exited pod", spec: podSpec{state: pod.Exited}, gcCalls: 1, gone: true},
		{name: "prepared pod", spec: podSpec{state: pod.Prepared}, gone: true},
		{name: "aborted prepare", spec: podSpec{state: pod.AbortedPrepare}, gone: true},
		{name: "running pod refused", spec: podSpec{state: pod.Running}, class: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.resetCalls()
			p := f.mkPod(tt.spec)
			out, errOut, err := f.run("rm", p.UUID)
			checkErr(t, err, tt.class, 0)
			if podExists(t, f.dir, p.UUID) == tt.gone {
				t.Fatalf("pod exists = %v, want %v", !tt.gone, !tt.gone)
			}
			calls := f.calls("gc")
			if len(calls) != tt.gcCalls {
				t.Fatalf("stage1 gc calls = %q, want %d", calls, tt.gcCalls)
			}
			if tt.gcCalls == 1 {
				want := strings.Join([]string{filepath.Join(f.dir, "pods", "exited-garbage", p.UUID), "--local-config=" + f.local, p.UUID}, "|")
				if calls[0] != want {
					t.Fatalf("stage1 gc call = %q, want %q", calls[0], want)
				}
			}
			if tt.gone && out != p.UUID+"\n" {
				t.Fatalf("stdout = %q, want the UUID", out)
			}
			if !tt.gone && (out != "" || !strings.Contains(errOut, "running")) {
				t.Fatalf("stdout = %q, stderr = %q", out, errOut)
			}
		})
	}

	t.Run("bad input", func(t *testing.T) {
		prefix := f.ambiguousPrefix()
		for _, bt := range []struct {
			name  string
			args  []string
			class error
			exit  int
		}{
			{name: "no UUID", args: []string{"rm"}, class: errdefs.ErrInvalidArgument},
			{name: "unknown UUID", args: []string{"rm", "00000000-0000-4000-8000-000000000000"}, class: errdefs.ErrNotFound, exit: 254},
			{name: "ambiguous prefix", args: []string{"rm", prefix}, class: errdefs.ErrInvalidArgument, exit: 2},
			{name: "missing uuid file", args: []string{"rm", "--uuid-file", filepath.Join(t.TempDir(), "none")}, class: errdefs.ErrInvalidArgument},
		} {
			t.Run(bt.name, func(t *testing.T) {
				_, _, err := f.run(bt.args...)
				checkErr(t, err, bt.class, bt.exit)
			})
		}
	})

	t.Run("stage1 gc failure still removes", func(t *testing.T) {
		f.resetCalls()
		f.setStatus("gc", 1)
		p := f.mkPod(podSpec{state: pod.Exited})
		_, errOut, err := f.run("rm", p.UUID)
		if err == nil || !strings.Contains(errOut, "removed, but its stage1 gc failed") {
			t.Fatalf("error = %v, stderr = %q", err, errOut)
		}
		if podExists(t, f.dir, p.UUID) {
			t.Fatal("pod still exists")
		}
	})
}

func TestPodsGC(t *testing.T) {
	f := newPodFixture(t)
	exited := f.mkPod(podSpec{state: pod.Exited})
	running := f.mkPod(podSpec{state: pod.Running})
	aborted := f.mkPod(podSpec{state: pod.AbortedPrepare})
	fresh := f.mkPod(podSpec{state: pod.Prepared})
	stale := f.mkPod(podSpec{state: pod.Prepared})
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(stale.Path, old, old); err != nil {
		t.Fatal(err)
	}
	gcCall := strings.Join([]string{filepath.Join(f.dir, "pods", "exited-garbage", exited.UUID), "--local-config=" + f.local, exited.UUID}, "|")

	steps := []struct {
		name    string
		args    []string
		states  map[*pod.Pod]pod.State // 0: removed
		gcCalls []string
		stderr  []string
	}{
		{
			name: "mark only",
			args: []string{"gc", "--mark-only"},
			states: map[*pod.Pod]pod.State{
				exited: pod.ExitedGarbage, running: pod.Running, aborted: pod.Garbage, fresh: pod.Prepared, stale: pod.Garbage,
			},
			stderr: []string{"marked exited pod " + exited.UUID, "discarded pod " + aborted.UUID, "discarded pod " + stale.UUID},
		},
		{
			name:   "sweep respects the grace period",
			args:   []string{"gc"},
			states: map[*pod.Pod]pod.State{exited: pod.ExitedGarbage, running: pod.Running, aborted: 0, fresh: pod.Prepared, stale: 0},
			stderr: []string{"kept pod " + exited.UUID, "removed pod " + aborted.UUID, "removed pod " + stale.UUID},
		},
		{
			name:    "sweep after the grace period",
			args:    []string{"gc", "--grace-period=0s"},
			states:  map[*pod.Pod]pod.State{exited: 0, running: pod.Running, fresh: pod.Prepared},
			gcCalls: []string{gcCall},
			stderr:  []string{"removed pod " + exited.UUID},
		},
		{
			name:    "nothing left to do",
			args:    []string{"gc", "--grace-period=0s", "--expire-prepared=0s"},
			states:  map[*pod.Pod]pod.State{running: pod.Running, fresh: pod.Prepared},
			gcCalls: []string{gcCall},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, errOut, err := f.run(st.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			if out != "" {
				t.Fatalf("gc printed on stdout: %q", out)
			}
			for p, want := range st.states {
				if want == 0 {
					if podExists(t, f.dir, p.UUID) {
						t.Errorf("pod %s still exists", p.UUID)
					}
					continue
				}
				if got := podState(t, f.dir, p.UUID); got != want {
					t.Errorf("pod %s is %s, want %s", p.UUID, got, want)
				}
			}
			if got := f.calls("gc"); !slices.Equal(got, st.gcCalls) {
				t.Errorf("stage1 gc calls = %q, want %q", got, st.gcCalls)
			}
			for _, s := range st.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"gc", "extra"}, {"gc", "--grace-period=-1s"}, {"gc", "--grace-period=soon"}} {
			_, _, err := f.run(args...)
			checkErr(t, err, errdefs.ErrInvalidArgument, 0)
		}
	})
}

func TestPodsCatManifest(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Prepared, apps: []string{"web"}})
	aborted := f.mkPod(podSpec{state: pod.AbortedPrepare})

	tests := []struct {
		name   string
		args   []string
		pretty bool
		class  error
	}{
		{name: "pretty by default", args: []string{"cat-manifest", p.UUID}, pretty: true},
		{name: "compact", args: []string{"cat-manifest", "--pretty-print=false", p.UUID[:8]}},
		{name: "no manifest yet", args: []string{"cat-manifest", aborted.UUID}, class: errdefs.ErrNotFound},
		{name: "no UUID", args: []string{"cat-manifest"}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := f.run(tt.args...)
			checkErr(t, err, tt.class, 0)
			if tt.class != nil {
				return
			}
			if got := strings.Count(out, "\n") > 1; got != tt.pretty {
				t.Fatalf("pretty = %v, want %v:\n%s", got, tt.pretty, out)
			}
			var pm schema.PodManifest
			if err := json.Unmarshal([]byte(out), &pm); err != nil {
				t.Fatal(err)
			}
			if len(pm.Apps) != 1 || pm.Apps[0].Name.String() != "web" {
				t.Fatalf("manifest apps = %+v", pm.Apps)
			}
		})
	}
}

// TestPodsBadInput checks that bad input is reported with the right class:
// usage errors (exit 2) and missing pods (exit 254).
func TestPodsBadInput(t *testing.T) {
	f := newPodFixture(t)
	exited := f.mkPod(podSpec{state: pod.Exited})
	prefix := f.ambiguousPrefix()
	unknown := "00000000-0000-4000-8000-000000000000"

	tests := []struct {
		name  string
		args  []string
		class error
	}{
		{name: "list with an argument", args: []string{"list", "x"}, class: errdefs.ErrInvalidArgument},
		{name: "list unknown format", args: []string{"list", "--format=xml"}, class: errdefs.ErrInvalidArgument},
		{name: "status without UUID", args: []string{"status"}, class: errdefs.ErrInvalidArgument},
		{name: "status unknown format", args: []string{"status", "--format=table", exited.UUID}, class: errdefs.ErrInvalidArgument},
		{name: "status unknown UUID", args: []string{"status", unknown}, class: errdefs.ErrNotFound},
		{name: "status not a UUID", args: []string{"status", "pod-one"}, class: errdefs.ErrInvalidArgument},
		{name: "status ambiguous prefix", args: []string{"status", prefix}, class: errdefs.ErrInvalidArgument},
		{name: "status bad wait", args: []string{"status", "--wait=soon", exited.UUID}, class: errdefs.ErrInvalidArgument},
		{name: "cat-manifest unknown UUID", args: []string{"cat-manifest", unknown}, class: errdefs.ErrNotFound},
		{name: "enter unknown UUID", args: []string{"enter", unknown}, class: errdefs.ErrNotFound},
		{name: "export one argument", args: []string{"export", exited.UUID}, class: errdefs.ErrInvalidArgument},
		{name: "export bad compression", args: []string{"export", "--compression=xz", exited.UUID, "out.aci"}, class: errdefs.ErrInvalidArgument},
		{name: "export unknown UUID", args: []string{"export", unknown, filepath.Join(t.TempDir(), "out.aci")}, class: errdefs.ErrNotFound},
		{name: "unknown flag", args: []string{"list", "--nope"}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := f.run(tt.args...)
			checkErr(t, err, tt.class, 0)
			if out != "" {
				t.Fatalf("stdout should be empty on error, got %q (stderr %q)", out, errOut)
			}
		})
	}
}

func TestPodsExport(t *testing.T) {
	f := newPodFixture(t)
	exited := f.mkPod(podSpec{state: pod.Exited})
	two := f.mkPod(podSpec{state: pod.Exited, apps: []string{"web", "db"}})
	running := f.mkPod(podSpec{state: pod.Running})
	// Pods prepared without overlayfs have a plain copy of the tree.
	for _, p := range []*pod.Pod{exited, two} {
		for _, app := range []string{"web", "db"} {
			root := filepath.Join(p.Path, stage1abi.AppRootfs(app))
			writeTestFile(t, filepath.Join(root, "etc", "hostname"), app+"\n", 0o644)
			writeTestFile(t, filepath.Join(root, "bin", app), "#!/bin/sh\n", 0o755)
			if err := os.Link(filepath.Join(root, "bin", app), filepath.Join(root, "bin", app+"-link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/hostname", filepath.Join(root, "hostname-link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(root, "var"), 0o750); err != nil {
				t.Fatal(err)
			}
		}
	}
	outDir := t.TempDir()

	tests := []struct {
		name    string
		args    []string
		app     string
		gzipped bool
		class   error
	}{
		{name: "single app", args: []string{"export", exited.UUID, filepath.Join(outDir, "web.aci")}, app: "web"},
		{name: "gzip", args: []string{"export", "--compression=gzip", exited.UUID, filepath.Join(outDir, "web.aci.gz")}, app: "web", gzipped: true},
		{name: "exists", args: []string{"export", exited.UUID, filepath.Join(outDir, "web.aci")}, class: errdefs.ErrAlreadyExists},
		{name: "overwrite", args: []string{"export", "--overwrite", exited.UUID, filepath.Join(outDir, "web.aci")}, app: "web"},
		{name: "app chosen", args: []string{"export", "--app=db", two.UUID, filepath.Join(outDir, "db.aci")}, app: "db"},
		{name: "several apps, none chosen", args: []string{"export", two.UUID, filepath.Join(outDir, "x.aci")}, class: errdefs.ErrInvalidArgument},
		{name: "running pod", args: []string{"export", running.UUID, filepath.Join(outDir, "r.aci")}, class: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := f.run(tt.args...)
			checkErr(t, err, tt.class, 0)
			if out != "" {
				t.Fatalf("stdout = %q", out)
			}
			if tt.class != nil {
				return
			}
			checkExportedACI(t, tt.args[len(tt.args)-1], tt.app, tt.gzipped)
		})
	}
	if left, _ := filepath.Glob(filepath.Join(outDir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %q", left)
	}
}

// checkExportedACI checks an ACI export wrote from the test tree.
func checkExportedACI(t *testing.T, path, app string, gzipped bool) {
	t.Helper()
	fh, err := os.Open(path) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fh.Close() }()
	var r io.Reader = fh
	if gzipped {
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	entries := make(map[string]*tar.Header)
	var names []string
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		entries[hdr.Name] = hdr
		if hdr.Name == "manifest" {
			if manifest, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(names) == 0 || names[0] != "manifest" {
		t.Fatalf("the manifest must come first: %q", names)
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(manifest, &im); err != nil {
		t.Fatal(err)
	}
	if im.Name.String() != "example.com/"+app || len(im.Dependencies) != 0 || len(im.PathWhitelist) != 0 {
		t.Fatalf("manifest = %s", manifest)
	}
	if v, _ := im.Labels.Get("version"); v != "1.0" {
		t.Fatalf("labels lost: %s", manifest)
	}
	want := map[string]byte{
		"rootfs/":                     tar.TypeDir,
		"rootfs/etc/":                 tar.TypeDir,
		"rootfs/etc/hostname":         tar.TypeReg,
		"rootfs/bin/" + app:           tar.TypeReg,
		"rootfs/bin/" + app + "-link": tar.TypeLink,
		"rootfs/hostname-link":        tar.TypeSymlink,
		"rootfs/var/":                 tar.TypeDir,
	}
	for name, typ := range want {
		hdr, ok := entries[name]
		if !ok {
			t.Fatalf("no entry %s in %q", name, names)
		}
		if hdr.Typeflag != typ {
			t.Errorf("%s: type %c, want %c", name, hdr.Typeflag, typ)
		}
	}
	if l := entries["rootfs/bin/"+app+"-link"].Linkname; l != "rootfs/bin/"+app {
		t.Errorf("hard link to %q", l)
	}
	if l := entries["rootfs/hostname-link"].Linkname; l != "/etc/hostname" {
		t.Errorf("symlink to %q", l)
	}
	if m := entries["rootfs/var/"].Mode; m != 0o750 {
		t.Errorf("rootfs/var mode %o", m)
	}
	if s := entries["rootfs/etc/hostname"].Size; s != int64(len(app)+1) {
		t.Errorf("rootfs/etc/hostname size %d", s)
	}
}

// TestPodsExportOverlay exports an app whose rootfs is an overlay over a
// rendered tree, as prepare makes it: mounted, and no longer mounted (after
// a reboot, say), when export mounts it read-only itself. It needs root.
func TestPodsExportOverlay(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := t.Context()
	f := newPodFixture(t)

	// An image with three files, imported and rendered.
	im := schema.BlankImageManifest()
	im.Name = *types.MustACIdentifier("example.com/web")
	tree := renderTestImage(t, f.dir, im, []testEntry{
		{name: "etc/hostname", body: "image\n"},
		{name: "etc/removed", body: "gone\n"},
		{name: "bin/app", body: "#!/bin/sh\n"},
	})
	requireOverlay(t, tree.Rootfs)

	// A pod whose app changed the tree: a new file, a changed one and a
	// deleted one (an overlayfs whiteout: a 0/0 character device).
	mkChangedPod := func(t *testing.T) (*pod.Pod, string, string) {
		p := f.mkPod(podSpec{state: pod.Exited, treeKey: tree.Key})
		overlay := filepath.Join(p.Path, stage1abi.OverlayDir, "apps", "web")
		upper, work := filepath.Join(overlay, "upper"), filepath.Join(overlay, "work")
		writeTestFile(t, filepath.Join(upper, "etc", "hostname"), "changed\n", 0o644)
		writeTestFile(t, filepath.Join(upper, "etc", "new"), "new\n", 0o644)
		if err := unix.Mknod(filepath.Join(upper, "etc", "removed"), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		return p, upper, work
	}
	check := func(t *testing.T, aciPath string) {
		t.Helper()
		fh, err := os.Open(aciPath) //nolint:gosec // G304: a file the test made
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fh.Close() }()
		got := make(map[string]string)
		tr := tar.NewReader(fh)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			got[hdr.Name] = string(b)
		}
		want := map[string]string{"rootfs/etc/hostname": "changed\n", "rootfs/etc/new": "new\n", "rootfs/bin/app": "#!/bin/sh\n"}
		for name, body := range want {
			if b, ok := got[name]; !ok || b != body {
				t.Errorf("%s = %q (present %v), want %q", name, b, ok, body)
			}
		}
		if _, ok := got["rootfs/etc/removed"]; ok {
			t.Errorf("a file the app deleted was exported")
		}
	}

	t.Run("mounted", func(t *testing.T) {
		p, upper, work := mkChangedPod(t)
		target := filepath.Join(p.Path, stage1abi.AppRootfs("web"))
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := (mountplan.Kernel{}).Mount(ctx, mountplan.OverlayMount(tree.Rootfs, upper, work, target)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mountplan.UnmountAll(context.WithoutCancel(ctx), p.Path) })
		out := filepath.Join(t.TempDir(), "web.aci")
		f.mustRun("export", p.UUID, out)
		check(t, out)
	})

	t.Run("not mounted", func(t *testing.T) {
		p, _, _ := mkChangedPod(t)
		out := filepath.Join(t.TempDir(), "web.aci")
		f.mustRun("export", p.UUID, out)
		check(t, out)
		tmp := filepath.Join(f.dir, exportTmpDir)
		if left, err := mountplan.MountPointsUnder(ctx, tmp); err != nil || len(left) != 0 {
			t.Fatalf("mounts left under %s: %q, %v", tmp, left, err)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("temporary directories left in %s: %v", tmp, left)
		}
	})
}

func TestPodsHelp(t *testing.T) {
	f := newPodFixture(t)
	for _, c := range testPodCommands() {
		t.Run(c.Name, func(t *testing.T) {
			out := f.mustRun(c.Name, "--help")
			for _, want := range []string{"nscn " + c.Name, c.Usage, "DESCRIPTION:", "--help"} {
				if !strings.Contains(out, want) {
					t.Errorf("--help lacks %q:\n%s", want, out)
				}
			}
			t.Logf("\n%s", out)
		})
	}
}

// testEntry is a file of a test image's rootfs; its directories are made
// as needed.
type testEntry struct {
	name, body string
	mode       int64 // default 0644
}

// renderTestImage imports an image with manifest m and files into the
// store of dataDir and renders it.
func renderTestImage(t *testing.T, dataDir string, m *schema.ImageManifest, files []testEntry) *tree.Tree {
	t.Helper()
	ctx := t.Context()
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	tw := tar.NewWriter(&img)
	write := func(hdr *tar.Header, body string) {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	write(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mb)), Typeflag: tar.TypeReg}, string(mb))
	write(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}, "")
	dirs := make(map[string]bool)
	for _, e := range files {
		for d := filepath.Dir(e.name); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				write(&tar.Header{Name: "rootfs/" + d + "/", Mode: 0o755, Typeflag: tar.TypeDir}, "")
			}
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		write(&tar.Header{Name: "rootfs/" + e.name, Mode: mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := s.Import(ctx, &img, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trees.Render(ctx, entry.ID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// requireOverlay skips the test (fails it in CI) when overlayfs cannot be
// mounted over lower.
func requireOverlay(t *testing.T, lower string) {
	t.Helper()
	if err := mountplan.ProbeOverlay(t.Context(), t.TempDir(), lower); err != nil {
		if testutil.InCI() {
			t.Fatalf("overlayfs unavailable: %v", err)
		}
		t.Skipf("overlayfs unavailable: %v", err)
	}
}

// TestPodsRmRemountsStage1 removes a pod that ran but whose stage1
// overlay is gone (the host rebooted): its stage1 rootfs is mounted again
// for the stage1 gc, then unmounted with the rest. It needs root.
func TestPodsRmRemountsStage1(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := t.Context()
	f := newPodFixture(t)
	var files []testEntry
	for _, ep := range fakeEntrypoints {
		files = append(files, testEntry{name: strings.TrimPrefix(ep, "/"), body: f.stage1Script(filepath.Base(ep)), mode: 0o755})
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(f.stage1Manifest(), &m); err != nil {
		t.Fatal(err)
	}
	s1 := renderTestImage(t, f.dir, &m, files)
	requireOverlay(t, s1.Rootfs)

	p := f.mkPod(podSpec{state: pod.Exited})
	// As after a reboot: the stage1 rootfs is an empty mount point, and
	// the overlay's upper and work directories are in the pod.
	rootfs := filepath.Join(p.Path, stage1abi.Stage1RootfsRel)
	if err := os.RemoveAll(rootfs); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{rootfs, filepath.Join(p.Path, stage1abi.OverlayDir, "stage1", "upper"), filepath.Join(p.Path, stage1abi.OverlayDir, "stage1", "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTestFile(t, filepath.Join(p.Path, stage1abi.Stage1TreeIDFile), s1.Key, 0o644)
	t.Cleanup(func() { _ = mountplan.UnmountAll(context.WithoutCancel(ctx), f.dir) })

	if out := f.mustRun("rm", p.UUID); out != p.UUID+"\n" {
		t.Fatalf("stdout = %q", out)
	}
	want := strings.Join([]string{filepath.Join(f.dir, "pods", "exited-garbage", p.UUID), "--local-config=" + f.local, p.UUID}, "|")
	if got := f.calls("gc"); len(got) != 1 || got[0] != want {
		t.Fatalf("stage1 gc calls = %q, want [%q]", got, want)
	}
	if podExists(t, f.dir, p.UUID) {
		t.Fatal("pod still exists")
	}
	if left, err := mountplan.MountPointsUnder(ctx, f.dir); err != nil || len(left) != 0 {
		t.Fatalf("mounts left: %q, %v", left, err)
	}
}

// TestPodsListWarnings lists a pod with a corrupt manifest: the row is
// still printed, and the problem is reported on stderr.
func TestPodsListWarnings(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited})
	writeTestFile(t, filepath.Join(p.Path, stage1abi.PodManifestFile), "{", 0o644)
	out, errOut, err := f.run("list", "--no-legend")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, p.UUID[:8]) || !strings.Contains(out, "exited") {
		t.Fatalf("stdout = %q, want the pod's row", out)
	}
	if !strings.Contains(errOut, "manifest of pod "+p.UUID) {
		t.Fatalf("stderr = %q, want a warning about the manifest", errOut)
	}
}
