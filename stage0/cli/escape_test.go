package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/store"
)

// hostile is a label value that clears the screen and sets the terminal's
// title, with a newline to forge a row and a C1 CSI for terminals that
// take it.
const hostile = "1.0\x1b[2J\x1b]0;pwned\x07\nforged\u009b31m"

// rawControl reports whether s holds a control character other than the
// newlines and tabs of a table.
func rawControl(s string) bool {
	for _, r := range s {
		if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f) {
			return true
		}
	}
	return false
}

// importLabelled imports a minimal image whose version label is version.
func importLabelled(t *testing.T, dataDir, version string) {
	t.Helper()
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("example.com/labelled")
	m.Labels = types.Labels{{Name: "version", Value: version}}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var img bytes.Buffer
	tw := tar.NewWriter(&img)
	for _, e := range []struct {
		hdr  tar.Header
		body []byte
	}{
		{tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mb)), Typeflag: tar.TypeReg}, mb},
		{tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}, nil},
	} {
		if err := tw.WriteHeader(&e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(t.Context(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(t.Context(), &img, store.ImportOptions{Source: "/tmp/evil\x1b[2J.aci"}); err != nil {
		t.Fatal(err)
	}
}

func TestImageListEscapesControlCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	importLabelled(t, dir, hostile)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "table", args: []string{"image", "list", "--no-legend", "--fields=name,source"}, want: `example.com/labelled:1.0\x1b[2J\x1b]0;pwned\x07\x0aforged\u009b31m`},
		{name: "source", args: []string{"image", "list", "--no-legend", "--fields=source"}, want: `/tmp/evil\x1b[2J.aci`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runAppIn(t, dir, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if rawControl(out) || strings.Count(out, "\n") != 1 {
				t.Fatalf("stdout holds raw control characters or extra lines: %q", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("stdout = %q, want it to show %q", out, tt.want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		out, _, err := runAppIn(t, dir, "image", "list", "--format=json")
		if err != nil {
			t.Fatal(err)
		}
		if rawControl(out) {
			t.Fatalf("JSON holds raw control characters: %q", out)
		}
		var images []struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal([]byte(out), &images); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(images) != 1 || images[0].Labels["version"] != hostile {
			t.Fatalf("the label did not survive as JSON: %+v", images)
		}
	})
}

func TestPodOutputEscapesControlCharacters(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited, statuses: map[string]int{"web": 0}})
	var pm schema.PodManifest
	if err := json.Unmarshal(podManifest(t, "web"), &pm); err != nil {
		t.Fatal(err)
	}
	pm.Apps[0].Image.Labels = types.Labels{{Name: "version", Value: hostile}}
	pm.Annotations = types.Annotations{{Name: "note", Value: "a\u009bb"}}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(p.Path, stage1abi.PodManifestFile), string(b), 0o644)
	tests := []struct {
		name string
		args []string
		json bool
	}{
		{name: "list", args: []string{"list", "--no-legend"}},
		{name: "list json", args: []string{"list", "--format=json"}, json: true},
		{name: "status", args: []string{"status", p.UUID}},
		{name: "status json", args: []string{"status", "--format=json", p.UUID}, json: true},
		{name: "cat-manifest", args: []string{"cat-manifest", p.UUID}, json: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := f.run(tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if rawControl(out) || rawControl(errOut) {
				t.Fatalf("output holds raw control characters:\n%q\n%q", out, errOut)
			}
			if tt.json && !json.Valid([]byte(out)) {
				t.Fatalf("not JSON: %s", out)
			}
			if tt.name == "list" && !strings.Contains(out, `example.com/web:1.0\x1b[2J`) {
				t.Fatalf("stdout = %q, want the escaped version", out)
			}
		})
	}
}
