package stage1

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestChoose(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, DefaultImage), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "other.aci"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	local, system := t.TempDir(), t.TempDir()
	writeConf := func(dir, name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "stage1.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stage1.d", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	emptyCfg := t.TempDir()
	badCfg := t.TempDir()
	writeConf(badCfg, "x.json", `{"nscnKind":"other","nscnVersion":"v1","location":"/x"}`)
	writeConf(system, "10.json", `{"nscnKind":"stage1","nscnVersion":"v1","location":"/system.aci"}`)
	writeConf(local, "10.json", `{"nscnKind":"stage1","nscnVersion":"v1","location":"https://example.com/local.aci"}`)
	rktCfg, rktNameCfg := t.TempDir(), t.TempDir()
	writeConf(rktCfg, "stage1.json", `{"rktKind":"stage1","rktVersion":"v1","location":"/usr/lib/rkt/stage1.aci"}`)
	writeConf(rktNameCfg, "stage1.json", `{"rktKind":"stage1","rktVersion":"v1","name":"coreos.com/rkt/stage1-coreos","version":"1.30.0"}`)

	tests := []struct {
		name  string
		sel   Selection
		dirs  []string
		want  Ref
		class error
	}{
		{name: "build default beside the binary", dirs: []string{emptyCfg}, want: Ref{Kind: Path, Value: filepath.Join(bin, DefaultImage), Trusted: true}},
		{name: "from dir", sel: Selection{FromDir: "other.aci"}, want: Ref{Kind: Path, Value: filepath.Join(bin, "other.aci"), Trusted: true}},
		{name: "from dir missing", sel: Selection{FromDir: "nope.aci"}, class: errdefs.ErrNotFound},
		{name: "from dir with a path", sel: Selection{FromDir: "../x.aci"}, class: errdefs.ErrInvalidArgument},
		{name: "path is checked like any image", sel: Selection{Path: "/x.aci"}, want: Ref{Kind: Path, Value: "/x.aci"}},
		{name: "hash", sel: Selection{Hash: "sha512-abc"}, want: Ref{Kind: Hash, Value: "sha512-abc"}},
		{name: "two flags conflict", sel: Selection{Path: "/x", Name: "y"}, class: errdefs.ErrInvalidArgument},
		{name: "local config wins over system", dirs: []string{local, system}, want: Ref{Kind: URL, Value: "https://example.com/local.aci", Trusted: true}},
		{name: "system config", dirs: []string{emptyCfg, system}, want: Ref{Kind: Path, Value: "/system.aci", Trusted: true}},
		{name: "bad config", dirs: []string{badCfg}, class: errdefs.ErrInvalidArgument},
		{name: "rkt's keys", dirs: []string{rktCfg}, want: Ref{Kind: Path, Value: "/usr/lib/rkt/stage1.aci", Trusted: true}},
		{name: "rkt's name and version", dirs: []string{rktNameCfg}, want: Ref{Kind: Name, Value: "coreos.com/rkt/stage1-coreos:1.30.0", Trusted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Choose(tt.sel, tt.dirs, bin)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("Choose = %+v, %v; want class %v", got, err, tt.class)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Choose = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReadEntrypoints(t *testing.T) {
	mk := func(ann map[string]string) *schema.ImageManifest {
		m := schema.BlankImageManifest()
		m.Name = "example.com/stage1"
		for k, v := range ann {
			m.Annotations.Set(*mustIdent(t, k), v)
		}
		return m
	}
	tests := []struct {
		name        string
		ann         map[string]string
		version     int
		emptyRootfs bool
		class       error
	}{
		{name: "no version means 1", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run"}, version: 1},
		{name: "version 6", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "6"}, version: 6},
		{name: "version 8 (ready file)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "8"}, version: 8},
		{name: "version 9 (metadata token file)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "9"}, version: 9},
		{name: "version 10 (private users)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "10"}, version: 10},
		{name: "version 11 (apps)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "11"}, version: 11},
		{name: "version 12 (app paths)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "12"}, version: 12},
		{name: "version 13 (mount options)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "13"}, version: 13},
		{name: "version 14 (app pid 1)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "14"}, version: 14},
		{name: "version 15 (pid)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "15"}, version: 15},
		{name: "version 16 (app tty)", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "16"}, version: 16},
		{name: "too new", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "coreos.com/rkt/stage1/interface-version": "17"}, class: errdefs.ErrFailedPrecondition},
		{name: "not a stage1", ann: map[string]string{}, class: errdefs.ErrFailedPrecondition},
		{name: "pod rootfs image", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "nscn.io/stage1/pod-rootfs": "image"}, version: 1},
		{name: "pod rootfs empty", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "nscn.io/stage1/pod-rootfs": "empty"}, version: 1, emptyRootfs: true},
		{name: "pod rootfs unknown", ann: map[string]string{"coreos.com/rkt/stage1/run": "/run", "nscn.io/stage1/pod-rootfs": "tmpfs"}, class: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ReadEntrypoints(mk(tt.ann))
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("ReadEntrypoints = %v; want class %v", err, tt.class)
				}
				return
			}
			if err != nil || e.Version != tt.version || e.Run != "/run" || e.EmptyRootfs != tt.emptyRootfs {
				t.Fatalf("ReadEntrypoints = %+v, %v", e, err)
			}
		})
	}
}

func mustIdent(t *testing.T, s string) *types.ACIdentifier {
	t.Helper()
	id, err := types.NewACIdentifier(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestImageDirs(t *testing.T) {
	write := func(t *testing.T, dir, name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "paths.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "paths.d", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	rkt := t.TempDir()
	write(t, rkt, "50.json", `{"rktKind":"paths","rktVersion":"v1","stage1-images":"/opt/rkt/stage1-images/"}`)
	nscn := t.TempDir()
	write(t, nscn, "10.json", `{"nscnKind":"paths","nscnVersion":"v1","stage1-images":"/first"}`)
	write(t, nscn, "20.json", `{"nscnKind":"paths","nscnVersion":"v1","stage1-images":"/second"}`)
	write(t, nscn, "30.json", `{"nscnKind":"paths","nscnVersion":"v1","data":"/var/lib/other"}`)
	wrongKind := t.TempDir()
	write(t, wrongKind, "x.json", `{"rktKind":"stage1","rktVersion":"v1","stage1-images":"/x"}`)
	relative := t.TempDir()
	write(t, relative, "x.json", `{"nscnKind":"paths","nscnVersion":"v1","stage1-images":"images"}`)
	notJSON := t.TempDir()
	write(t, notJSON, "x.json", `{`)

	tests := []struct {
		name   string
		dirs   []string
		binDir string
		want   []string
		class  error
	}{
		{name: "compiled-in default", dirs: []string{empty}, binDir: "/b", want: []string{"/b", SystemImageDir}},
		{name: "no bin dir", dirs: []string{empty}, want: []string{SystemImageDir}},
		{name: "rkt paths.d", dirs: []string{empty, rkt}, binDir: "/b", want: []string{"/b", "/opt/rkt/stage1-images"}},
		{name: "last file setting it wins", dirs: []string{nscn}, want: []string{"/second"}},
		{name: "local wins over system", dirs: []string{nscn, rkt}, want: []string{"/second"}},
		{name: "wrong kind", dirs: []string{wrongKind}, class: errdefs.ErrInvalidArgument},
		{name: "relative dir", dirs: []string{relative}, class: errdefs.ErrInvalidArgument},
		{name: "not JSON", dirs: []string{notJSON}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ImageDirs(tt.dirs, tt.binDir)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("ImageDirs = %v, %v; want class %v", got, err, tt.class)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ImageDirs = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestChooseFromPathsDir(t *testing.T) {
	images := t.TempDir()
	if err := os.WriteFile(filepath.Join(images, DefaultImage), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg, "paths.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := `{"rktKind":"paths","rktVersion":"v1","stage1-images":"` + images + `"}`
	if err := os.WriteFile(filepath.Join(cfg, "paths.d", "stage1.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// An empty bin dir: the image is found only through paths.d.
	got, err := Choose(Selection{}, []string{cfg}, t.TempDir())
	want := Ref{Kind: Path, Value: filepath.Join(images, DefaultImage), Trusted: true}
	if err != nil || got != want {
		t.Fatalf("Choose = %+v, %v; want %+v", got, err, want)
	}
}
