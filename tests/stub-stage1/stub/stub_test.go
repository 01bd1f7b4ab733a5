package stub

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestAppStatus(t *testing.T) {
	tests := []struct {
		name    string
		app     string
		ann     string // exit-status annotation; "" for none
		want    int
		wantErr bool
	}{
		{name: "plain app", app: "web", want: 0},
		{name: "fail-N", app: "fail-3", want: 3},
		{name: "fail-255", app: "fail-255", want: 255},
		{name: "fail-256 is out of range", app: "fail-256", wantErr: true},
		{name: "fail-x", app: "fail-x", wantErr: true},
		{name: "annotation", app: "web", ann: "12", want: 12},
		{name: "annotation wins over the name", app: "fail-3", ann: "0", want: 0},
		{name: "bad annotation", app: "web", ann: "-1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := schema.RuntimeApp{Name: *types.MustACName(tt.app)}
			if tt.ann != "" {
				ra.Annotations.Set(AnnotationExitStatus, tt.ann)
			}
			got, err := AppStatus(ra)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AppStatus error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("AppStatus = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestReadRecordsMissing(t *testing.T) {
	recs, err := ReadRecords(t.TempDir(), Run)
	if err != nil || recs != nil {
		t.Fatalf("ReadRecords of nothing = %v, %v", recs, err)
	}
}

// buildStub compiles the stub once per test that needs it.
func buildStub(t *testing.T) string {
	t.Helper()
	testutil.RequiresCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "stub")
	if err := BuildBinary(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestImage builds the binary and the image, checks both, extracts the
// image as stage0 would into a pod's stage1 rootfs and runs the gc
// entrypoint from there.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the stub")
	}
	ctx := context.Background()
	bin := buildStub(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("stub binary is dynamically linked")
		}
	}
	_ = f.Close()

	tests := []struct {
		name       string
		version    string
		wantAbsent bool
		wantCheck  bool // stage1abi.CheckInterfaceVersion accepts it
	}{
		{name: "current interface", version: "6", wantCheck: true},
		{name: "no interface annotation", version: "", wantAbsent: true, wantCheck: true},
		{name: "too new", version: "99", wantCheck: false},
		{name: "not a number", version: "x", wantCheck: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteACI(ctx, &buf, ACIOptions{Binary: bin, InterfaceVersion: tt.version}); err != nil {
				t.Fatal(err)
			}
			r, _, err := aci.Decompress(bytes.NewReader(buf.Bytes()), aci.Decoders{})
			if err != nil {
				t.Fatal(err)
			}
			im, _, err := aci.ReadManifest(r)
			_ = r.Close()
			if err != nil {
				t.Fatalf("ReadManifest: %v", err)
			}
			if im.Name.String() != "nosecone.dev/stub-stage1" {
				t.Errorf("name = %s", im.Name)
			}
			for ep, ann := range Annotations {
				if v, _ := im.GetAnnotation(ann); v != BinDir+"/"+ep {
					t.Errorf("annotation %s = %q", ann, v)
				}
			}
			v, ok := im.GetAnnotation(stage1abi.AnnotationInterfaceVersion)
			if ok == tt.wantAbsent || v != tt.version {
				t.Errorf("interface version annotation = %q (present %v)", v, ok)
			}
			if _, err := stage1abi.CheckInterfaceVersion(v); (err == nil) != tt.wantCheck {
				t.Errorf("CheckInterfaceVersion(%q) = %v", v, err)
			}
		})
	}

	// Extract the image into a pod and run gc from it, from another
	// working directory: the stub finds the pod from its own path.
	pod := t.TempDir()
	if err := os.WriteFile(filepath.Join(pod, stage1abi.PodManifestFile), []byte(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(pod, stage1abi.Stage1RootfsRel)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteACI(ctx, &buf, ACIOptions{Binary: bin, Entrypoints: []string{Run, GC}}); err != nil {
		t.Fatal(err)
	}
	r, _, err := aci.Decompress(&buf, aci.Decoders{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	if err := aci.ExtractRootfs(ctx, r, rootfs, aci.ExtractOptions{}); err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}
	gc := exec.Command(filepath.Join(rootfs, BinDir, GC), "--debug", "0b5e7c3a-8f2d-4d1e-9a6b-3c2f1e0d9b8a") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	gc.Dir = t.TempDir()
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	recs, err := ReadRecords(pod, GC)
	if err != nil || len(recs) != 1 || recs[0].Entrypoint != GC || !strings.HasSuffix(recs[0].Argv0, "/gc") {
		t.Fatalf("gc records = %+v, %v", recs, err)
	}
}
