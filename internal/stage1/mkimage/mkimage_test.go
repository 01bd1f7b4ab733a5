package mkimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func testSpec() Spec {
	return Spec{
		Name: "nosecone.dev/nscn/stage1-test", Version: "1.2.3", GOARCH: "amd64",
		Entrypoints:      Entrypoints{Run: "/t/run", Enter: "/t/enter", GC: "/t/gc", Stop: "/t/stop"},
		InterfaceVersion: stage1abi.InterfaceVersionIPC,
	}
}

func TestManifest(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Spec)
		wantArch  string
		wantClass error // nil: no error, unless wantErr
		wantErr   bool  // any error
	}{
		{name: "amd64", edit: func(*Spec) {}, wantArch: "amd64"},
		{name: "arm64 is aarch64", edit: func(s *Spec) { s.GOARCH = "arm64" }, wantArch: "aarch64"},
		{name: "unknown arch", edit: func(s *Spec) { s.GOARCH = "mips" }, wantErr: true},
		{name: "interface version 0", edit: func(s *Spec) { s.InterfaceVersion = 0 }, wantClass: errdefs.ErrInvalidArgument},
		{name: "interface version past the max", edit: func(s *Spec) { s.InterfaceVersion = stage1abi.MaxInterfaceVersion + 1 }, wantClass: errdefs.ErrInvalidArgument},
		{name: "no version", edit: func(s *Spec) { s.Version = "" }, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad name", edit: func(s *Spec) { s.Name = "Not A Name" }, wantClass: errdefs.ErrInvalidArgument},
		{name: "relative entrypoint", edit: func(s *Spec) { s.Entrypoints.Stop = "t/stop" }, wantClass: errdefs.ErrInvalidArgument},
		{name: "no run entrypoint", edit: func(s *Spec) { s.Entrypoints.Run = "" }, wantClass: errdefs.ErrInvalidArgument},
		{name: "no enter entrypoint", edit: func(s *Spec) { s.Entrypoints.Enter = "" }, wantArch: "amd64"},
		{name: "empty pod rootfs", edit: func(s *Spec) { s.EmptyPodRootfs = true }, wantArch: "amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec()
			tt.edit(&s)
			im, err := s.Manifest()
			switch {
			case tt.wantClass == nil && !tt.wantErr && err != nil:
				t.Fatalf("Manifest: %v", err)
			case tt.wantErr && err == nil, tt.wantClass != nil && !errors.Is(err, tt.wantClass):
				t.Fatalf("Manifest error = %v, want class %v", err, tt.wantClass)
			}
			if err != nil {
				return
			}
			// The manifest must be valid for the appc schema both ways.
			data, err := json.Marshal(im)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			var back schema.ImageManifest
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if back.App != nil {
				t.Error("a stage1 image must have no app")
			}
			if v, _ := back.GetLabel("arch"); v != tt.wantArch {
				t.Errorf("arch label = %q, want %q", v, tt.wantArch)
			}
			if v, _ := back.GetLabel("version"); v != "1.2.3" {
				t.Errorf("version label = %q", v)
			}
			if _, ok := back.Annotations.Get(stage1abi.AnnotationEnter); ok != (s.Entrypoints.Enter != "") {
				t.Errorf("enter annotation present = %v, entrypoint %q", ok, s.Entrypoints.Enter)
			}
			want := map[string]string{
				"coreos.com/rkt/stage1/run":               "/t/run",
				"coreos.com/rkt/stage1/enter":             "/t/enter",
				"coreos.com/rkt/stage1/gc":                "/t/gc",
				"coreos.com/rkt/stage1/stop":              "/t/stop",
				"coreos.com/rkt/stage1/interface-version": "6",
			}
			if s.Entrypoints.Enter == "" {
				delete(want, "coreos.com/rkt/stage1/enter")
			}
			if s.EmptyPodRootfs {
				want["nscn.io/stage1/pod-rootfs"] = "empty"
			}
			got := map[string]string{}
			for _, a := range back.Annotations {
				got[a.Name.String()] = a.Value
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("annotations = %v, want %v", got, want)
			}
		})
	}
}

// TestInterfaceVersionNames: every version stage1abi defines past the
// first has exactly one name, so a new version cannot be forgotten here.
func TestInterfaceVersionNames(t *testing.T) {
	seen := map[int]string{}
	for name, v := range interfaceVersions {
		if other, ok := seen[v]; ok {
			t.Errorf("version %d is named both %q and %q", v, name, other)
		}
		seen[v] = name
		if got, err := InterfaceVersionByName(name); err != nil || got != v {
			t.Errorf("InterfaceVersionByName(%q) = %d, %v", name, got, err)
		}
	}
	for v := stage1abi.MinInterfaceVersion + 1; v <= stage1abi.MaxInterfaceVersion; v++ {
		if _, ok := seen[v]; !ok {
			t.Errorf("interface version %d has no name", v)
		}
	}
	if _, err := InterfaceVersionByName("9"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a number is not a name: %v", err)
	}
}

func TestBuildDeterministic(t *testing.T) {
	dir := t.TempDir()
	for p, mode := range map[string]os.FileMode{"rootfs/t/run": 0o700, "rootfs/t/gc": 0o755, "rootfs/t/README": 0o600} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("run", filepath.Join(dir, "rootfs/t/init")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "a.aci")
	o := Options{ModTime: time.Unix(0, 0), NormalizeModes: true}
	if err := Build(context.Background(), testSpec(), dir, out, o); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(out) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}
	// A touched file must not change the archive.
	if err := os.Chtimes(filepath.Join(dir, "rootfs/t/gc"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := Build(context.Background(), testSpec(), dir, out, o); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two archives of the same tree differ")
	}
	written, err := os.ReadFile(filepath.Join(dir, "manifest")) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}

	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d mtime %v, want 0:0 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		if h.Name == "manifest" {
			body, err := io.ReadAll(tr)
			if err != nil || !bytes.Equal(body, written) {
				t.Errorf("the archive's manifest differs from dir/manifest (%v)", err)
			}
		}
		got = append(got, h.Name+" "+os.FileMode(h.Mode).String()) //nolint:gosec // G115: a tar mode from our own archive
	}
	want := []string{
		"manifest -rw-r--r--",
		"rootfs/ -rwxr-xr-x",
		"rootfs/t/ -rwxr-xr-x",
		"rootfs/t/README -rw-r--r--",
		"rootfs/t/gc -rwxr-xr-x",
		"rootfs/t/init -rwxrwxrwx",
		"rootfs/t/run -rwxr-xr-x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries =\n%q\nwant\n%q", got, want)
	}
}

func TestSourceDateEpoch(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{name: "unset", in: "", want: 0},
		{name: "set", in: "1700000000", want: 1700000000},
		{name: "garbage", in: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SourceDateEpoch(tt.in)
			if (err != nil) != tt.wantErr || (err == nil && got.Unix() != tt.want) {
				t.Errorf("SourceDateEpoch(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestCheckBuildScript(t *testing.T) {
	good := `go run ./internal/stage1/cmd/mkstage1 \
	-name nosecone.dev/nscn/stage1-test -version "$version" -arch "$goarch" \
	-interface-version ipc \
	-run /t/run -enter /t/enter -gc /t/gc -stop /t/stop \
	-dir "$image" -o "$outdir/stage1-test.aci"
`
	tests := []struct {
		name        string
		script      string
		emptyRootfs bool
		wantErr     bool
	}{
		{name: "matches", script: good},
		{name: "other interface version", script: strings.Replace(good, "-interface-version ipc", "-interface-version ready", 1), wantErr: true},
		{name: "a number", script: strings.Replace(good, "-interface-version ipc", "-interface-version 6", 1), wantErr: true},
		{name: "other entrypoint", script: strings.Replace(good, "-gc /t/gc", "-gc /t/collect", 1), wantErr: true},
		{name: "no name", script: strings.Replace(good, "-name nosecone.dev/nscn/stage1-test", "", 1), wantErr: true},
		{name: "not called", script: "echo nothing\n", wantErr: true},
		{name: "empty pod rootfs not wanted", script: strings.Replace(good, "-dir", "-pod-rootfs empty -dir", 1), wantErr: true},
		{name: "empty pod rootfs", script: strings.Replace(good, "-dir", "-pod-rootfs empty -dir", 1), emptyRootfs: true},
		{name: "empty pod rootfs missing", script: good, emptyRootfs: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec()
			spec.EmptyPodRootfs = tt.emptyRootfs
			err := CheckBuildScript([]byte(tt.script), spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckBuildScript = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
