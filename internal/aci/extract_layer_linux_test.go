package aci

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

// extractLayers applies OCI layers in order into dest, with workers and
// then serially, and returns the paths in dest (a trailing / on
// directories, "-> target" on symlinks) and the error of the first layer
// that failed.
func extractLayers(t *testing.T, dest string, layers ...[]ent) ([]string, error) {
	t.Helper()
	for _, l := range layers {
		if err := ExtractRootfs(context.Background(), bytes.NewReader(buildTar(t, l...)), dest, ExtractOptions{Layer: true}); err != nil {
			return nil, err
		}
	}
	var out []string
	err := filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dest {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		switch {
		case info.IsDir():
			rel += "/"
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			rel += " -> " + target
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out, nil
}

func TestExtractLayerWhiteouts(t *testing.T) {
	base := []ent{
		dirEnt("./", 0o755), dirEnt("etc/", 0o755), fileEnt("etc/passwd", "root"), fileEnt("etc/shadow", "x"),
		dirEnt("opt/", 0o755), dirEnt("opt/app/", 0o755), fileEnt("opt/app/old", "1"), dirEnt("opt/app/sub/", 0o755), fileEnt("opt/app/sub/deep", "2"),
		dirEnt("var/", 0o755), fileEnt("var/keep", "k"), symlinkEnt("var/link", "/etc/passwd"),
		fileEnt("bin", "a file that becomes a directory"),
	}
	tests := []struct {
		name  string
		upper []ent
		want  string
	}{
		{
			name:  "whiteout a file",
			upper: []ent{fileEnt("etc/.wh.shadow", "")},
			want:  "bin etc/ etc/passwd opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd",
		},
		{
			name:  "whiteout a directory",
			upper: []ent{fileEnt("opt/.wh.app", "")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ var/ var/keep var/link -> /etc/passwd",
		},
		{
			name:  "whiteout a symlink, not what it points to",
			upper: []ent{fileEnt("var/.wh.link", "")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep",
		},
		{
			name:  "opaque directory keeps this layer's entries, before or after the marker",
			upper: []ent{fileEnt("opt/app/new", "n"), fileEnt("opt/app/.wh..wh..opq", ""), dirEnt("opt/app/sub/", 0o755), fileEnt("opt/app/sub/newer", "3"), fileEnt("opt/app/later", "l")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/later opt/app/new opt/app/sub/ opt/app/sub/newer var/ var/keep var/link -> /etc/passwd",
		},
		{
			name:  "whiteout then recreate",
			upper: []ent{fileEnt("etc/.wh.passwd", ""), fileEnt("etc/passwd", "new")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd",
		},
		{
			name:  "a whiteout does not remove this layer's own file",
			upper: []ent{fileEnt("var/new", "n"), fileEnt("var/.wh.new", "")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd var/new",
		},
		{
			name:  "whiteout of a missing name",
			upper: []ent{fileEnt("nowhere/.wh.x", ""), fileEnt("etc/.wh.nothing", "")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd",
		},
		{
			name:  "hard link to an earlier layer's file",
			upper: []ent{hardlinkEnt("var/pw", "etc/passwd")},
			want:  "bin etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd var/pw",
		},
		{
			name:  "a directory replaces a file",
			upper: []ent{dirEnt("bin/", 0o755), fileEnt("bin/sh", "sh")},
			want:  "bin/ bin/sh etc/ etc/passwd etc/shadow opt/ opt/app/ opt/app/old opt/app/sub/ opt/app/sub/deep var/ var/keep var/link -> /etc/passwd",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := extractLayers(t, t.TempDir(), base, tt.upper)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("tree:\n got %s\nwant %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}

// TestExtractLayerHostile checks that hostile layers fail cleanly or stay
// inside the tree, and that nothing beside it is touched.
func TestExtractLayerHostile(t *testing.T) {
	tests := []struct {
		name    string
		layers  func(sentinel string) [][]ent
		wantErr bool
	}{
		{name: "dot-dot name", wantErr: true, layers: func(string) [][]ent {
			return [][]ent{{fileEnt("../escape", "x")}}
		}},
		{name: "dot-dot whiteout", wantErr: true, layers: func(string) [][]ent {
			return [][]ent{{fileEnt("a/../../.wh.sentinel", "")}}
		}},
		{name: "whiteout through an absolute symlink stays inside", layers: func(s string) [][]ent {
			return [][]ent{{symlinkEnt("out", s)}, {fileEnt("out/.wh.secret", "")}}
		}},
		{name: "opaque through an absolute symlink stays inside", layers: func(s string) [][]ent {
			return [][]ent{{symlinkEnt("out", s)}, {fileEnt("out/.wh..wh..opq", "")}}
		}},
		{name: "whiteout through a relative symlink stays inside", layers: func(string) [][]ent {
			return [][]ent{{symlinkEnt("out", "../../sentinel")}, {fileEnt("out/.wh.secret", "")}}
		}},
		{name: "write through an absolute symlink stays inside", wantErr: true, layers: func(s string) [][]ent {
			return [][]ent{{symlinkEnt("out", s)}, {fileEnt("out/secret", "pwned")}}
		}},
		{name: "hard link out of the tree", wantErr: true, layers: func(string) [][]ent {
			return [][]ent{{hardlinkEnt("pw", "../sentinel/secret")}}
		}},
		{name: "absolute hard link stays inside", wantErr: true, layers: func(s string) [][]ent {
			return [][]ent{{hardlinkEnt("pw", s+"/secret")}}
		}},
		{name: "hard link through a symlink to the host", wantErr: true, layers: func(s string) [][]ent {
			return [][]ent{{symlinkEnt("out", s)}, {hardlinkEnt("pw", "out/secret")}}
		}},
		{name: "whiteout with an empty name", wantErr: true, layers: func(string) [][]ent {
			return [][]ent{{fileEnt(".wh.", "")}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newEscapeFixture(t)
			_, err := extractLayers(t, fx.dest, tt.layers(fx.sentinel)...)
			fx.check(t)
			if tt.wantErr && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %v, want an InvalidArgument error", err)
			}
			if !tt.wantErr && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzExtractLayer applies a fixed base layer and then a generated layer
// whose names may be whiteouts, and checks that nothing outside dest was
// created or changed.
func FuzzExtractLayer(f *testing.F) {
	f.Add([]byte{0x80, 2, 8, 14, 0})                   // a whiteout of /etc/passwd
	f.Add([]byte{0x82, 1, 5, 1, 8, 0x80, 2, 5, 14, 0}) // evil -> sentinel; evil/.wh.secret
	f.Add([]byte{0x80, 2, 5, 12, 0})                   // evil/.wh..wh..opq
	f.Fuzz(func(t *testing.T, prog []byte) {
		fx := newEscapeFixture(t)
		ents := decodeFuzzProgram(prog, fx.sentinel)
		for i := range ents {
			e := &ents[i]
			e.name = strings.TrimPrefix(e.name, "rootfs/")
			// Whiteouts come from the vocabulary's "c" and "rootfs/evil".
			e.name = strings.ReplaceAll(e.name, "c", ".wh.a")
			e.name = strings.ReplaceAll(e.name, "evil/", ".wh..wh..opq/")
			e.name = strings.ReplaceAll(e.name, "passwd", ".wh.secret")
			e.link = strings.TrimPrefix(e.link, "rootfs/")
		}
		base := buildTar(t, dirEnt("etc/", 0o755), fileEnt("etc/passwd", "x"), dirEnt("a/", 0o755), fileEnt("a/b", "y"))
		if err := ExtractRootfs(context.Background(), bytes.NewReader(base), fx.dest, ExtractOptions{Layer: true}); err != nil {
			t.Fatal(err)
		}
		for _, serial := range []bool{false, true} {
			_ = extract(context.Background(), bytes.NewReader(buildTarLoose(ents)), fx.dest, ExtractOptions{Layer: true}, tuning{serial: serial})
			fx.check(t)
		}
	})
}
