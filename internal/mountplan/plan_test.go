package mountplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// fixture is a pod directory and rendered trees in a temporary directory.
type fixture struct {
	root, pod, trees string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	root := t.TempDir()
	f := fixture{root: root, pod: filepath.Join(root, "pods", "run", "0b5e7c3a-8f2d-4d1e-9a6b-3c2f1e0d9b8a"), trees: filepath.Join(root, "trees")}
	for _, tree := range []string{"stage1", "web", "db"} {
		rootfs := filepath.Join(f.trees, "deps-sha512-"+tree, "rootfs")
		if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, "etc", "hostname"), []byte(tree+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(f.pod, 0o750); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) config(mode Mode) Config {
	tree := func(name string) string { return filepath.Join(f.trees, "deps-sha512-"+name, "rootfs") }
	return Config{
		PodDir:       f.pod,
		Stage1Rootfs: tree("stage1"),
		Apps:         []App{{Name: "web", Rootfs: tree("web")}, {Name: "db", Rootfs: tree("db")}},
		Mode:         mode,
	}
}

// normalize replaces the fixture's temporary paths with stable names.
func (f fixture) normalize(s string) string {
	s = strings.ReplaceAll(s, f.pod, "$POD")
	return strings.ReplaceAll(s, f.trees, "$TREES")
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) { t.Helper(); testutil.Golden(t, name, []byte(got)) }

// TestPlanGolden builds the plan of a two-app pod, applies it with a
// Recorder (no root: directories and copies are made for real in a
// temporary directory, mounts are only recorded), and compares the plan
// and the recorded mounts with testdata/.
func TestPlanGolden(t *testing.T) {
	for _, mode := range []Mode{Overlay, Copy} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t)
			plan, err := Build(f.config(mode))
			if err != nil {
				t.Fatal(err)
			}
			rec, text := applyRecorded(t, plan)
			golden(t, "plan-2apps-"+mode.String()+".golden", f.normalize(text))

			if !slices.Equal(rec.Mounts(), plan.Mounts()) {
				t.Errorf("recorded mounts differ from the plan's")
			}
			for _, s := range plan.Steps {
				if s.Action == ActionMkdir {
					fi, err := os.Lstat(s.Path)
					if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
						t.Errorf("mkdir %s: %v, %v", s.Path, fi, err)
					}
				}
			}
			if mode == Copy {
				for app, want := range map[string]string{"web": "web\n", "db": "db\n"} {
					got, err := os.ReadFile(filepath.Join(f.pod, stage1abi.AppRootfs(app), "etc", "hostname"))
					if err != nil || string(got) != want {
						t.Errorf("copied rootfs of %s: %q, %v", app, got, err)
					}
				}
			}
		})
	}
}

// applyRecorded applies plan with a Recorder and returns it with the
// golden files' text: the plan, then the mounts it recorded.
func applyRecorded(t *testing.T, plan Plan) (*Recorder, string) {
	t.Helper()
	rec := &Recorder{}
	if err := Apply(context.Background(), plan, rec); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var b strings.Builder
	b.WriteString("# plan\n")
	b.WriteString(plan.String())
	b.WriteString("# recorded mounts\n")
	for _, m := range rec.Mounts() {
		b.WriteString(m.String() + "\n")
	}
	return rec, b.String()
}

// TestPlanEmptyStage1: a stage1 that asks for an empty pod rootfs gets a
// plain directory, with the app rootfses made in it as usual, in both
// modes; its tree is neither mounted nor copied, and need not be named.
func TestPlanEmptyStage1(t *testing.T) {
	for _, mode := range []Mode{Overlay, Copy} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t)
			cfg := f.config(mode)
			cfg.Stage1Empty, cfg.Stage1Rootfs = true, ""
			plan, err := Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rec, text := applyRecorded(t, plan)
			golden(t, "plan-2apps-empty-stage1-"+mode.String()+".golden", f.normalize(text))
			for _, m := range rec.Mounts() {
				if m.Target == filepath.Join(f.pod, stage1abi.Stage1RootfsRel) {
					t.Errorf("the empty stage1 rootfs is mounted: %s", m)
				}
			}
			ents, err := os.ReadDir(filepath.Join(f.pod, stage1abi.Stage1RootfsRel))
			if err != nil || len(ents) != 1 || ents[0].Name() != "opt" {
				t.Errorf("stage1 rootfs holds %v (%v), want only opt/", ents, err)
			}
			if _, err := os.Lstat(filepath.Join(f.pod, stage1abi.OverlayDir, "stage1")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("overlay/stage1 made for an empty stage1 rootfs: %v", err)
			}
		})
	}
}

// TestPlanMetaCopy: a pod run with --private-users gets its overlays with
// metacopy=on, and only then.
func TestPlanMetaCopy(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(Overlay)
	cfg.MetaCopy = true
	plan, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-2apps-overlay-metacopy.golden", f.normalize(plan.String()))
}

func TestBuildRejects(t *testing.T) {
	good := Config{PodDir: "/p", Stage1Rootfs: "/t/s1", Apps: []App{{Name: "a", Rootfs: "/t/a"}}, Mode: Overlay}
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{name: "no mode", mutate: func(c *Config) { c.Mode = 0 }},
		{name: "relative pod dir", mutate: func(c *Config) { c.PodDir = "pods/x" }},
		{name: "unclean pod dir", mutate: func(c *Config) { c.PodDir = "/p/../q" }},
		{name: "empty stage1 rootfs", mutate: func(c *Config) { c.Stage1Rootfs = "" }},
		{name: "comma in a lower", mutate: func(c *Config) { c.Apps[0].Rootfs = "/t/a,upperdir=/etc" }},
		{name: "colon in a lower", mutate: func(c *Config) { c.Apps[0].Rootfs = "/t/a:/etc" }},
		{name: "backslash in the pod dir", mutate: func(c *Config) { c.PodDir = `/p\x` }},
		{name: "app name with a slash", mutate: func(c *Config) { c.Apps[0].Name = "../../etc" }},
		{name: "upper-case app name", mutate: func(c *Config) { c.Apps[0].Name = "Web" }},
		{name: "empty app name", mutate: func(c *Config) { c.Apps[0].Name = "" }},
		{name: "duplicate app", mutate: func(c *Config) { c.Apps = append(c.Apps, c.Apps[0]) }},
		{name: "relative app rootfs", mutate: func(c *Config) { c.Apps[0].Rootfs = "a" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Apps = slices.Clone(good.Apps)
			tt.mutate(&c)
			if _, err := Build(c); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Build = %v, want InvalidArgument", err)
			}
		})
	}
	// A comma is fine when copying.
	c := good
	c.Apps = []App{{Name: "a", Rootfs: "/t/a,b"}}
	c.Mode = Copy
	if _, err := Build(c); err != nil {
		t.Errorf("Build in copy mode: %v", err)
	}
	if _, err := Build(good); err != nil {
		t.Errorf("Build: %v", err)
	}
}

func TestApplyRefuses(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	tests := []struct {
		name    string
		setup   func(t *testing.T) // makes the pod hostile
		plan    func(p Plan) Plan
		wantErr error
	}{
		{
			name: "symlink in the stage1 rootfs",
			setup: func(t *testing.T) {
				// The stage1 image has /opt -> the outside.
				if err := os.MkdirAll(filepath.Join(f.pod, stage1abi.Stage1RootfsRel), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(outside, filepath.Join(f.pod, stage1abi.Stage1RootfsRel, "opt")); err != nil {
					t.Fatal(err)
				}
			},
			plan:    func(p Plan) Plan { return p },
			wantErr: errdefs.ErrFailedPrecondition,
		},
		{
			name: "step outside the pod",
			plan: func(p Plan) Plan {
				p.Steps = append(p.Steps, Step{Action: ActionMkdir, Path: filepath.Join(outside, "x")})
				return p
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "dot-dot escape",
			plan: func(p Plan) Plan {
				p.Steps = []Step{{Action: ActionMkdir, Path: f.pod + "/../../x"}}
				return p
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "mount target differs from the step path",
			plan: func(p Plan) Plan {
				m := p.Steps[3]
				m.Mount.Target = outside
				p.Steps = []Step{m}
				return p
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name:    "unknown action",
			plan:    func(p Plan) Plan { p.Steps = []Step{{Action: 9, Path: f.pod}}; return p },
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.RemoveAll(f.pod); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(f.pod, 0o750); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(t)
			}
			plan, err := Build(f.config(Overlay))
			if err != nil {
				t.Fatal(err)
			}
			rec := &Recorder{}
			err = Apply(context.Background(), tt.plan(plan), rec)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply = %v, want %v", err, tt.wantErr)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("Apply wrote outside the pod: %v", ents)
			}
		})
	}
}

// TestApplyUndoesMountsOnFailure: the third mount fails; the two before
// are unmounted, last first.
func TestApplyUndoesMountsOnFailure(t *testing.T) {
	f := newFixture(t)
	plan, err := Build(f.config(Overlay))
	if err != nil {
		t.Fatal(err)
	}
	ms := plan.Mounts()
	boom := errors.New("boom")
	rec := &Recorder{Fail: func(m Mount) error {
		if m.Target == ms[2].Target {
			return boom
		}
		return nil
	}}
	if err := Apply(context.Background(), plan, rec); !errors.Is(err, boom) {
		t.Fatalf("Apply = %v, want boom", err)
	}
	if want := []string{ms[1].Target, ms[0].Target}; !slices.Equal(rec.Unmounts(), want) {
		t.Errorf("undone = %v, want %v", rec.Unmounts(), want)
	}
	// A canceled context stops before any step.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec = &Recorder{}
	if err := Apply(ctx, plan, rec); !errors.Is(err, context.Canceled) || len(rec.Mounts()) != 0 {
		t.Errorf("Apply with a canceled context = %v, %d mounts", err, len(rec.Mounts()))
	}
}

func TestUnmountAllWithNothingMounted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, root := range []string{dir, filepath.Join(dir, "missing")} {
		if err := UnmountAll(ctx, root); err != nil {
			t.Errorf("UnmountAll(%s): %v", root, err)
		}
		mps, err := MountPointsUnder(ctx, root)
		if err != nil || len(mps) != 0 {
			t.Errorf("MountPointsUnder(%s) = %v, %v", root, mps, err)
		}
	}
	// The root file system is under "/".
	mps, err := MountPointsUnder(ctx, "/")
	if err != nil || !slices.Contains(mps, "/") {
		t.Errorf("MountPointsUnder(/) = %v, %v", mps, err)
	}
	if mps[len(mps)-1] != "/" {
		t.Errorf("/ is not unmounted last: %v", mps)
	}
}

func TestUnder(t *testing.T) {
	tests := []struct {
		name      string
		path, dir string
		want      bool
	}{
		{name: "same", path: "/a/b", dir: "/a/b", want: true},
		{name: "child", path: "/a/b/c", dir: "/a/b", want: true},
		{name: "sibling with the same prefix", path: "/a/bc", dir: "/a/b", want: false},
		{name: "parent", path: "/a", dir: "/a/b", want: false},
		{name: "root", path: "/x", dir: "/", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := under(tt.path, tt.dir); got != tt.want {
				t.Errorf("under(%q, %q) = %v", tt.path, tt.dir, got)
			}
		})
	}
}

// TestApplyOverlayOrCopy: overlays when they mount; a copy, with the
// overlay attempt undone and its directories gone, when one fails; the
// error when the failure is not the overlay's or cannot be undone.
func TestApplyOverlayOrCopy(t *testing.T) {
	boom := errors.New("no overlayfs here")
	tests := []struct {
		name     string
		fail     func(m Mount) error // the Recorder's Fail
		noUndo   bool                // the Mounter cannot unmount
		wantMode Mode
		wantErr  bool
	}{
		{name: "overlay works", wantMode: Overlay},
		{name: "stage1 overlay fails", fail: func(Mount) error { return boom }, wantMode: Copy},
		{
			name: "an app overlay fails after the stage1 one mounted",
			fail: func(m Mount) error {
				if strings.HasSuffix(m.Target, "/db/rootfs") {
					return boom
				}
				return nil
			},
			wantMode: Copy,
		},
		{name: "the attempt cannot be undone", fail: func(m Mount) error {
			if strings.HasSuffix(m.Target, "/db/rootfs") {
				return boom
			}
			return nil
		}, noUndo: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rec := &Recorder{Fail: tt.fail}
			var m Mounter = rec
			if tt.noUndo {
				m = mountOnly{rec}
			}
			mode, why, err := ApplyOverlayOrCopy(context.Background(), f.config(Copy), m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ApplyOverlayOrCopy error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if mode != tt.wantMode {
				t.Fatalf("mode = %v, want %v", mode, tt.wantMode)
			}
			if (mode == Copy) != errors.Is(why, boom) {
				t.Errorf("reason = %v, want %v only when copying", why, boom)
			}
			if mode == Overlay {
				if n := len(rec.Mounts()); n != 3 {
					t.Errorf("%d mounts, want 3", n)
				}
				return
			}
			// Every overlay mount made was undone.
			if len(rec.Unmounts()) != len(rec.Mounts()) {
				t.Errorf("mounted %d, undid %v", len(rec.Mounts()), rec.Unmounts())
			}
			if _, err := os.Stat(filepath.Join(f.pod, stage1abi.OverlayDir)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("overlay directory left after the fallback: %v", err)
			}
			for rel, want := range map[string]string{
				stage1abi.Stage1RootfsRel:  "stage1\n",
				stage1abi.AppRootfs("web"): "web\n",
				stage1abi.AppRootfs("db"):  "db\n",
			} {
				b, err := os.ReadFile(filepath.Join(f.pod, rel, "etc", "hostname")) //nolint:gosec // G304: a file the test made
				if err != nil || string(b) != want {
					t.Errorf("%s/etc/hostname = %q, %v; want %q", rel, b, err, want)
				}
			}
		})
	}
}

// TestApplyOverlayOrCopyCanceled: a canceled context is an error, not a
// reason to copy.
func TestApplyOverlayOrCopyCanceled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := ApplyOverlayOrCopy(ctx, f.config(Overlay), &Recorder{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("ApplyOverlayOrCopy = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(f.pod, stage1abi.Stage1RootfsRel, "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copied despite the canceled context: %v", err)
	}
}

// mountOnly hides the Unmount method of its Mounter.
type mountOnly struct{ m Mounter }

func (o mountOnly) Mount(ctx context.Context, m Mount) error { return o.m.Mount(ctx, m) }

// TestRemoveTree: it deletes what os.RemoveAll would, symlinks as links
// (never their targets), and a missing path is not an error.
func TestRemoveTree(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "keep")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(root, "pod")
	for i := range 1500 { // more than one Readdirnames batch
		d := filepath.Join(tree, "a", "b", fmt.Sprint(i%3))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprint(i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(tree, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "empty", "dirs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(tree); err != nil {
		t.Fatalf("RemoveTree: %v", err)
	}
	if _, err := os.Lstat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree left: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("symlink target removed: %v", err)
	}
	if err := RemoveTree(tree); err != nil {
		t.Errorf("RemoveTree of a missing path: %v", err)
	}
}
