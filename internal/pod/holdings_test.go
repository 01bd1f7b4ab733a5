package pod

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestListHoldings(t *testing.T) {
	tree := func(c string) string { return "deps-sha512-" + strings.Repeat(c, 64) }
	image := func(c string) string { return "sha512-" + strings.Repeat(c, 128) }
	manifest := func(ids ...string) string {
		var apps []string
		for i, id := range ids {
			apps = append(apps, `{"name":"a`+string(rune('0'+i))+`","image":{"id":"`+id+`"}}`)
		}
		return `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[` + strings.Join(apps, ",") + `]}`
	}
	tests := []struct {
		name  string
		dir   string
		files map[string]string // relative to the pod directory
		want  *Holdings         // nil: left out
	}{
		{
			name: "prepared pod with two apps",
			dir:  dirPrepared,
			files: map[string]string{
				stage1abi.Stage1TreeIDFile: tree("1") + "\n",
				filepath.Join(stage1abi.AppInfoDir("web"), stage1abi.AppTreeIDFile): tree("2"),
				filepath.Join(stage1abi.AppInfoDir("db"), stage1abi.AppTreeIDFile):  tree("3"),
				stage1abi.PodManifestFile: manifest(image("a"), image("b")),
			},
			want: &Holdings{Trees: []string{tree("1"), tree("3"), tree("2")}, Images: []string{image("a"), image("b")}},
		},
		{
			name: "being prepared: stage1 tree recorded, nothing else yet",
			dir:  dirPrepare,
			files: map[string]string{
				stage1abi.Stage1TreeIDFile: tree("4"),
			},
			want: &Holdings{Trees: []string{tree("4")}},
		},
		{
			name: "garbage still holds its trees; a bad manifest names no image",
			dir:  dirGarbage,
			files: map[string]string{
				filepath.Join(stage1abi.AppInfoDir("web"), stage1abi.AppTreeIDFile): tree("5"),
				stage1abi.PodManifestFile: "{",
			},
			want: &Holdings{Trees: []string{tree("5")}},
		},
		{name: "embryo holds nothing", dir: dirEmbryo},
		{
			name: "two apps of one image and tree",
			dir:  dirRun,
			files: map[string]string{
				filepath.Join(stage1abi.AppInfoDir("a"), stage1abi.AppTreeIDFile): tree("6"),
				filepath.Join(stage1abi.AppInfoDir("b"), stage1abi.AppTreeIDFile): tree("6"),
				stage1abi.PodManifestFile: manifest(image("c"), image("c")),
			},
			want: &Holdings{Trees: []string{tree("6")}, Images: []string{image("c")}},
		},
		{
			name: "image volumes' trees (nscn cri)",
			dir:  dirRun,
			files: map[string]string{
				filepath.Join(stage1abi.AppInfoDir("c"), stage1abi.AppTreeIDFile):      tree("7"),
				filepath.Join(stage1abi.AppInfoDir("c"), stage1abi.AppVolumeTreesFile): tree("8") + "\n" + tree("9") + "\n" + tree("7") + "\n",
			},
			want: &Holdings{Trees: []string{tree("7"), tree("8"), tree("9")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			id := mkPod(t, data, tt.dir)
			for rel, content := range tt.files {
				p := filepath.Join(podPath(data, tt.dir, id), rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Another pod, without holdings, is left out.
			mkPod(t, data, dirEmbryo)
			got, err := ListHoldings(t.Context(), data)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("ListHoldings = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("ListHoldings = %+v, want one pod's", got)
			}
			g, w := got[0], *tt.want
			slices.Sort(g.Trees)
			slices.Sort(w.Trees)
			if g.UUID != id || !slices.Equal(g.Trees, w.Trees) || !slices.Equal(g.Images, w.Images) {
				t.Errorf("ListHoldings = %+v, want %+v for pod %s", g, w, id)
			}
		})
	}
}

func TestListHoldingsNoPods(t *testing.T) {
	got, err := ListHoldings(t.Context(), t.TempDir())
	if err != nil || len(got) != 0 {
		t.Fatalf("ListHoldings of an empty data dir = %v, %v", got, err)
	}
}
