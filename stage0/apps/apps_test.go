package apps

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

const testUUID = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

func manifest(names ...string) *schema.PodManifest {
	pm := schema.BlankPodManifest()
	for _, n := range names {
		pm.Apps = append(pm.Apps, schema.RuntimeApp{
			Name:  *types.MustACName(n),
			Image: schema.RuntimeImage{Name: types.MustACIdentifier("example.com/" + n), ID: *types.NewHashSHA512([]byte(n))},
			App:   &types.App{Exec: types.Exec{"/bin/" + n}, User: "0", Group: "0"},
		})
	}
	return pm
}

// podDir lays out an exited pod (in run/, unlocked) with manifest pm.
func podDir(t *testing.T, pm *schema.PodManifest) (dataDir, dir string) {
	t.Helper()
	dataDir = t.TempDir()
	dir = filepath.Join(dataDir, "pods", "run", testUUID)
	if err := os.MkdirAll(filepath.Join(dir, "stage1", "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stage1abi.CreatedFile), []byte(time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stage1abi.PodManifestFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
	return dataDir, dir
}

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteManifest(t *testing.T) {
	_, dir := podDir(t, manifest("a"))
	if err := WriteManifest(dir, manifest("a", "b")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, stage1abi.PodManifestFile)) //nolint:gosec // G304: the test's pod directory
	if err != nil {
		t.Fatal(err)
	}
	var got schema.PodManifest
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Apps) != 2 || got.Apps[1].Name.String() != "b" {
		t.Fatalf("manifest after WriteManifest: %s", b)
	}
	fi, err := os.Stat(filepath.Join(dir, stage1abi.PodManifestFile))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the new manifest's mode is %v (%v), want the old one's 0640", fi.Mode(), err)
	}
	// No temporary file is left beside it.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s left in the pod directory", e.Name())
		}
	}
	if err := WriteManifest(filepath.Join(dir, "nope"), manifest()); err == nil {
		t.Error("WriteManifest wrote into a directory with no manifest")
	}
}

func TestWithoutApp(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		rm   string
		want []string
	}{
		{name: "middle", in: []string{"a", "b", "c"}, rm: "b", want: []string{"a", "c"}},
		{name: "only", in: []string{"a"}, rm: "a", want: []string{}},
		{name: "absent", in: []string{"a"}, rm: "z", want: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm := manifest(tt.in...)
			got := appNames(WithoutApp(pm, tt.rm))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("WithoutApp(%v, %s) = %v, want %v", tt.in, tt.rm, got, tt.want)
			}
			if len(pm.Apps) != len(tt.in) {
				t.Fatal("WithoutApp changed its input")
			}
		})
	}
}

// TestList: each app's state comes from the files stage0 and the stage1
// leave in the pod directory; a pod that no longer runs has no running
// app.
func TestList(t *testing.T) {
	dataDir, dir := podDir(t, manifest("created", "started", "exited", "forged"))
	for _, n := range []string{"created", "started", "exited", "forged"} {
		write(t, dir, filepath.Join(stage1abi.AppInfoDir(n), stage1abi.AppManifestFile), "{}")
	}
	write(t, dir, stage1abi.AppStartedFile("started"), "1234\n")
	write(t, dir, stage1abi.AppStartedFile("exited"), "99\n")
	write(t, dir, stage1abi.AppStatusFile("exited"), "143\n")
	// A status file the pod replaced with something else is ignored.
	if err := os.MkdirAll(filepath.Join(dir, stage1abi.AppStatusFile("forged")), 0o755); err != nil {
		t.Fatal(err)
	}
	sts, err := List(context.Background(), dataDir, testUUID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{"created": Created, "started": Unknown, "exited": Exited, "forged": Created}
	for _, st := range sts {
		if st.State != want[st.Name] {
			t.Errorf("app %s: state %s, want %s", st.Name, st.State, want[st.Name])
		}
		if st.Created.IsZero() || st.Image != "example.com/"+st.Name {
			t.Errorf("app %s: %+v", st.Name, st)
		}
	}
	st, err := StatusOf(context.Background(), dataDir, testUUID[:8], "exited")
	if err != nil || st.ExitCode == nil || *st.ExitCode != 143 || st.PID != 0 || st.Finished.IsZero() || st.Started.IsZero() {
		t.Fatalf("StatusOf(exited) = %+v, %v", st, err)
	}
	if _, err := StatusOf(context.Background(), dataDir, testUUID, "nope"); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "created, started") {
		t.Fatalf("StatusOf(nope) = %v; want not found, naming the apps", err)
	}
}

// TestAddRefusesExitedPod: the app commands act on running pods only.
func TestAddRefusesExitedPod(t *testing.T) {
	dataDir, _ := podDir(t, manifest("a"))
	for name, do := range map[string]func() error{
		"start": func() error { return Start(context.Background(), Config{DataDir: dataDir}, testUUID, "a") },
		"stop":  func() error { return Stop(context.Background(), Config{DataDir: dataDir}, testUUID, "a") },
		"rm":    func() error { return Rm(context.Background(), Config{DataDir: dataDir}, testUUID, "a") },
		"add": func() error {
			_, err := Add(context.Background(), Config{DataDir: dataDir}, testUUID, AddOptions{})
			return err
		},
	} {
		if err := do(); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not running") {
			t.Errorf("%s on an exited pod: %v", name, err)
		}
	}
}
