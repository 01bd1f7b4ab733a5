package prepare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/mountplan"
)

// TestAppPlan: an app added to a running pod gets its rootfs alone (the
// stage1's is mounted already), as an overlay, or as a copy in a pod
// without an overlay directory.
func TestAppPlan(t *testing.T) {
	tests := []struct {
		name    string
		overlay bool
		want    []string
	}{
		{name: "overlay", overlay: true, want: []string{
			"mkdir POD/overlay/apps/web/upper",
			"mkdir POD/overlay/apps/web/work",
			"mkdir POD/stage1/rootfs/opt/stage2/web/rootfs",
			"mount POD/stage1/rootfs/opt/stage2/web/rootfs",
		}},
		{name: "copy", want: []string{
			"mkdir POD/stage1/rootfs/opt/stage2/web",
			"copy POD/stage1/rootfs/opt/stage2/web/rootfs",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := t.TempDir()
			if tt.overlay {
				if err := os.Mkdir(filepath.Join(pod, "overlay"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			p, err := appPlan(pod, "web", "/store/tree/rootfs")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, st := range p.Steps {
				verb := map[mountplan.Action]string{mountplan.ActionMkdir: "mkdir", mountplan.ActionMount: "mount", mountplan.ActionCopy: "copy"}[st.Action]
				got = append(got, verb+" "+strings.Replace(st.Path, pod, "POD", 1))
				if st.Action == mountplan.ActionMount && !strings.Contains(st.Mount.Data, "lowerdir=/store/tree/rootfs,") {
					t.Errorf("the overlay's options %q do not name the app's tree", st.Mount.Data)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("appPlan steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
