package mountplan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mountsUnder(t *testing.T, root string) []string {
	t.Helper()
	mps, err := MountPointsUnder(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return mps
}

// TestOverlayWritesGoToUpper really mounts an overlay, writes through it,
// and checks that the lower tree is untouched and the upper holds the
// change; UnmountAll then leaves nothing mounted.
func TestOverlayWritesGoToUpper(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	t.Cleanup(func() { _ = UnmountAll(context.Background(), root) })
	lower, upper, work, merged := filepath.Join(root, "lower"), filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "merged")
	mustWrite(t, filepath.Join(lower, "etc", "motd"), "lower\n")
	mustWrite(t, filepath.Join(lower, "etc", "gone"), "x\n")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Kernel{}).Mount(ctx, OverlayMount(lower, upper, work, merged)); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(merged, "etc", "motd")); got != "lower\n" {
		t.Fatalf("merged view = %q", got)
	}
	mustWrite(t, filepath.Join(merged, "etc", "motd"), "changed\n")
	mustWrite(t, filepath.Join(merged, "new"), "new\n")
	if err := os.Remove(filepath.Join(merged, "etc", "gone")); err != nil {
		t.Fatal(err)
	}

	if got := mustRead(t, filepath.Join(lower, "etc", "motd")); got != "lower\n" {
		t.Errorf("lower changed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(lower, "new")); err == nil {
		t.Error("new file written to the lower tree")
	}
	if _, err := os.Stat(filepath.Join(lower, "etc", "gone")); err != nil {
		t.Error("removal reached the lower tree")
	}
	if got := mustRead(t, filepath.Join(upper, "etc", "motd")); got != "changed\n" {
		t.Errorf("upper = %q, want the change", got)
	}
	if got := mustRead(t, filepath.Join(upper, "new")); got != "new\n" {
		t.Errorf("upper new = %q", got)
	}

	if err := UnmountAll(ctx, root); err != nil {
		t.Fatal(err)
	}
	if mps := mountsUnder(t, root); len(mps) != 0 {
		t.Fatalf("still mounted: %v", mps)
	}
	if ents, _ := os.ReadDir(merged); len(ents) != 0 {
		t.Errorf("merged directory not empty after unmount: %v", ents)
	}
	if err := UnmountAll(ctx, root); err != nil {
		t.Errorf("second UnmountAll: %v", err)
	}
}

// TestApplyPlanForReal applies the two-app plan with the kernel mounter,
// checks what the apps see, and undoes it with UnmountAll, including a
// stack of mounts and a busy mount.
func TestApplyPlanForReal(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	f := newFixture(t)
	t.Cleanup(func() { _ = UnmountAll(context.Background(), f.pod) })
	plan, err := Build(f.config(Overlay))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := NewLogging(Kernel{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err := Apply(ctx, plan, m); err != nil {
		t.Fatalf("Apply: %v\n%s", err, logs.String())
	}
	if got := mustRead(t, filepath.Join(f.pod, stage1abi.Stage1RootfsRel, "etc", "hostname")); got != "stage1\n" {
		t.Errorf("stage1 rootfs shows %q", got)
	}
	web := filepath.Join(f.pod, stage1abi.AppRootfs("web"))
	if got := mustRead(t, filepath.Join(web, "etc", "hostname")); got != "web\n" {
		t.Errorf("web rootfs shows %q", got)
	}
	mustWrite(t, filepath.Join(web, "etc", "hostname"), "changed\n")
	if got := mustRead(t, filepath.Join(f.trees, "deps-sha512-web", "rootfs", "etc", "hostname")); got != "web\n" {
		t.Errorf("tree changed: %q", got)
	}
	if got := mustRead(t, filepath.Join(f.pod, stage1abi.OverlayDir, "apps", "web", "upper", "etc", "hostname")); got != "changed\n" {
		t.Errorf("upper of web = %q", got)
	}
	// The app targets were created inside the stage1 overlay: in its upper.
	if _, err := os.Stat(filepath.Join(f.pod, stage1abi.OverlayDir, "stage1", "upper", "opt", "stage2", "db", "rootfs")); err != nil {
		t.Errorf("app target not in the stage1 upper: %v", err)
	}
	mps := mountsUnder(t, f.pod)
	if len(mps) != 3 {
		t.Fatalf("mounts under the pod = %v, want 3", mps)
	}
	if mps[len(mps)-1] != filepath.Join(f.pod, stage1abi.Stage1RootfsRel) {
		t.Errorf("stage1 rootfs is not unmounted last: %v", mps)
	}

	// A stack of two tmpfs on the db rootfs, and a busy mount below web.
	db := filepath.Join(f.pod, stage1abi.AppRootfs("db"))
	for range 2 {
		if err := (Kernel{}).Mount(ctx, Mount{Source: "tmpfs", Target: db, FSType: "tmpfs"}); err != nil {
			t.Fatal(err)
		}
	}
	busy := filepath.Join(web, "tmp")
	if err := os.Mkdir(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (Kernel{}).Mount(ctx, Mount{Source: "tmpfs", Target: busy, FSType: "tmpfs"}); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(busy) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	t.Chdir(busy) // a working directory inside makes it busy too

	if err := UnmountAll(ctx, f.pod); err != nil {
		t.Fatalf("UnmountAll: %v", err)
	}
	if mps := mountsUnder(t, f.pod); len(mps) != 0 {
		t.Fatalf("still mounted: %v", mps)
	}
	if err := UnmountAll(ctx, f.pod); err != nil {
		t.Errorf("second UnmountAll: %v", err)
	}
	if !bytes.Contains(logs.Bytes(), []byte("msg=mount")) {
		t.Errorf("mounts not logged: %s", logs.String())
	}
}

// TestApplyUndoesRealMounts: a plan failing after a real mount leaves
// nothing mounted.
func TestApplyUndoesRealMounts(t *testing.T) {
	testutil.RequiresRoot(t)
	f := newFixture(t)
	t.Cleanup(func() { _ = UnmountAll(context.Background(), f.pod) })
	cfg := f.config(Overlay)
	cfg.Apps[1].Rootfs = filepath.Join(f.trees, "missing")
	plan, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), plan, Kernel{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Apply with a missing lower = %v, want NotFound", err)
	}
	if mps := mountsUnder(t, f.pod); len(mps) != 0 {
		t.Fatalf("mounts left after a failed Apply: %v", mps)
	}
}

func TestProbeOverlay(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	scratch := t.TempDir()
	lower := t.TempDir()
	if err := ProbeOverlay(ctx, scratch); err != nil {
		t.Fatalf("ProbeOverlay: %v", err)
	}
	if err := ProbeOverlay(ctx, scratch, lower, lower); err != nil {
		t.Fatalf("ProbeOverlay with lowers: %v", err)
	}
	if err := ProbeOverlay(ctx, scratch, filepath.Join(lower, "missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ProbeOverlay with a missing lower: %v", err)
	}
	if err := ProbeOverlay(ctx, scratch, "/a,b"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ProbeOverlay with a comma: %v", err)
	}
	if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
		t.Errorf("probe left %v", ents)
	}
	if mps := mountsUnder(t, scratch); len(mps) != 0 {
		t.Errorf("probe left mounts %v", mps)
	}
}

// failOverlayOf is the kernel mounter, except that an overlay mount on a
// target ending in suffix fails as overlayfs does on a lower it refuses.
type failOverlayOf struct {
	Kernel
	suffix string
}

func (k failOverlayOf) Mount(ctx context.Context, m Mount) error {
	if m.FSType == "overlay" && strings.HasSuffix(m.Target, k.suffix) {
		return classifyErrno(unix.EINVAL, fmt.Errorf("mount overlay on %s: %w", m.Target, unix.EINVAL))
	}
	return k.Kernel.Mount(ctx, m)
}

// TestApplyOverlayOrCopyForReal: with working overlays, the pod gets three
// real overlay mounts; when the last one fails, the stage1 overlay really
// mounted before it is undone and every rootfs is a copy.
func TestApplyOverlayOrCopyForReal(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tt := range []struct {
		name       string
		m          Mounter
		wantMode   Mode
		wantMounts int
	}{
		{name: "overlays", m: Kernel{}, wantMode: Overlay, wantMounts: 3},
		{name: "an app overlay refused", m: failOverlayOf{suffix: "/db/rootfs"}, wantMode: Copy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			t.Cleanup(func() { _ = UnmountAll(context.Background(), f.pod) })
			mode, why, err := ApplyOverlayOrCopy(context.Background(), f.config(Overlay), tt.m)
			if err != nil {
				t.Fatalf("ApplyOverlayOrCopy: %v", err)
			}
			if mode != tt.wantMode || (mode == Copy) != errors.Is(why, errdefs.ErrInvalidArgument) {
				t.Fatalf("mode %v (reason %v), want %v", mode, why, tt.wantMode)
			}
			if mps := mountsUnder(t, f.pod); len(mps) != tt.wantMounts {
				t.Errorf("mounts under the pod = %v, want %d", mps, tt.wantMounts)
			}
			for rel, want := range map[string]string{
				stage1abi.Stage1RootfsRel:  "stage1\n",
				stage1abi.AppRootfs("web"): "web\n",
				stage1abi.AppRootfs("db"):  "db\n",
			} {
				if got := mustRead(t, filepath.Join(f.pod, rel, "etc", "hostname")); got != want {
					t.Errorf("%s/etc/hostname = %q, want %q", rel, got, want)
				}
			}
		})
	}
}

// TestUnmountPodAndRemoveTree: UnmountPod undoes the plan's mounts,
// stacks included, without the mount table; a mount it does not know of
// stops RemoveTree, with the mounted files untouched, until UnmountAll
// finds it.
func TestUnmountPodAndRemoveTree(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	f := newFixture(t)
	t.Cleanup(func() { _ = UnmountAll(context.Background(), f.pod) })
	plan, err := Build(f.config(Overlay))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, plan, Kernel{}); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(f.pod, stage1abi.AppRootfs("db"))
	if err := (Kernel{}).Mount(ctx, Mount{Source: "tmpfs", Target: db, FSType: "tmpfs"}); err != nil {
		t.Fatal(err)
	}
	if err := UnmountPod(ctx, f.pod); err != nil {
		t.Fatalf("UnmountPod: %v", err)
	}
	if mps := mountsUnder(t, f.pod); len(mps) != 0 {
		t.Fatalf("still mounted after UnmountPod: %v", mps)
	}
	if err := UnmountPod(ctx, f.pod); err != nil {
		t.Errorf("second UnmountPod: %v", err)
	}

	// A host directory bind-mounted somewhere UnmountPod does not look.
	host := t.TempDir()
	mustWrite(t, filepath.Join(host, "precious"), "keep\n")
	vol := filepath.Join(f.pod, "volumes", "data")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (Kernel{}).Mount(ctx, Mount{Source: host, Target: vol, FSType: "none", Flags: unix.MS_BIND}); err != nil {
		t.Fatal(err)
	}
	if err := UnmountPod(ctx, f.pod); err != nil {
		t.Fatalf("UnmountPod with a foreign mount: %v", err)
	}
	if err := RemoveTree(f.pod); !errors.Is(err, ErrMountInside) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("RemoveTree over a bind mount = %v, want ErrMountInside", err)
	}
	if got := mustRead(t, filepath.Join(host, "precious")); got != "keep\n" {
		t.Fatalf("RemoveTree deleted through the bind mount: %q", got)
	}
	if err := UnmountAll(ctx, f.pod); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(f.pod); err != nil {
		t.Fatalf("RemoveTree: %v", err)
	}
	if _, err := os.Lstat(f.pod); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod directory left: %v", err)
	}
	if got := mustRead(t, filepath.Join(host, "precious")); got != "keep\n" {
		t.Errorf("host file changed: %q", got)
	}
}

// TestRemoveTreeBindMountedFile: a file mount point stops RemoveTree too.
func TestRemoveTreeBindMountedFile(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "hosts")
	mustWrite(t, src, "host\n")
	target := filepath.Join(dir, "a", "hosts")
	mustWrite(t, target, "")
	if err := (Kernel{}).Mount(context.Background(), Mount{Source: src, Target: target, FSType: "none", Flags: unix.MS_BIND}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = UnmountAll(context.Background(), dir) })
	if err := RemoveTree(dir); !errors.Is(err, ErrMountInside) {
		t.Fatalf("RemoveTree = %v, want ErrMountInside", err)
	}
	if got := mustRead(t, src); got != "host\n" {
		t.Errorf("bind-mounted file changed: %q", got)
	}
}
