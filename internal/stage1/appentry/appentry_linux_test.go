package appentry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/podattach"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

const testUUID = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// flavorRecord is a flavor's record, Record and a field of its own, as
// the nspawn flavor keeps one.
type flavorRecord struct {
	Record
	Extra bool `json:"extra,omitempty"`
}

func TestRecord(t *testing.T) {
	dir := t.TempDir()
	args, err := sdpod.ParseRunArgs([]string{"--net=host", "--mutable", testUUID})
	if err != nil {
		t.Fatal(err)
	}
	rec := flavorRecord{Record: NewRecord(sdpod.LayoutConfig{Args: args, ResolvConf: "/r", Hosts: "/h", MetadataURL: "http://m"}), Extra: true}
	if err := WriteRecord(dir, "rec.json", rec); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "rec.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v, mode %v; want 0600 (it holds the metadata token)", err, st.Mode().Perm())
	}
	var got flavorRecord
	if err := ReadRecord(dir, "rec.json", &got); err != nil {
		t.Fatal(err)
	}
	if !got.Extra || got.ResolvConf != "/r" || got.Hosts != "/h" || got.MetadataURL != "http://m" || got.Args.UUID != testUUID || !got.Args.Mutable {
		t.Errorf("read back %+v, want %+v", got, rec)
	}
	// Its JSON is a flat object: a flavor's fields beside Record's.
	var flat map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "rec.json")) //nolint:gosec // G304: the test's own file
	if err := json.Unmarshal(data, &flat); err != nil || flat["extra"] != true || flat["resolvConf"] != "/r" {
		t.Errorf("record JSON %s: want extra and resolvConf at the top", data)
	}

	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write bool
		file  string
		want  error
	}{
		{name: "a second write", write: true, file: "rec.json", want: os.ErrExist},
		{name: "a write through a symlink", write: true, file: "link.json"},
		{name: "no record: not a mutable pod", file: "none.json", want: errdefs.ErrFailedPrecondition},
		{name: "bad JSON", file: "bad.json", want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.write {
				err = WriteRecord(dir, tt.file, rec)
			} else {
				err = ReadRecord(dir, tt.file, &flavorRecord{})
			}
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) && !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a write followed the symlink: %v", err)
	}
}

func TestCheckCall(t *testing.T) {
	podDir := filepath.Join(t.TempDir(), testUUID)
	if err := os.Mkdir(podDir, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		uuid     string
		pid      string
		wantErr  error
		wantPID  int
		wantsDir bool
	}{
		{name: "ok", uuid: testUUID, pid: "42", wantPID: 42, wantsDir: true},
		{name: "another pod's directory", uuid: "0" + testUUID[1:], pid: "42", wantErr: errdefs.ErrInvalidArgument},
		{name: "no pid", uuid: testUUID, pid: "", wantErr: errdefs.ErrInvalidArgument},
		{name: "a pid that is not a number", uuid: testUUID, pid: "qemu", wantErr: errdefs.ErrInvalidArgument},
		{name: "pid 0", uuid: testUUID, pid: "0", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(podDir)
			t.Setenv(stage1abi.EnvEnterPID, tt.pid)
			dir, pid, err := CheckCall(abiargs.AppArgs{UUID: tt.uuid, App: "web"})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || pid != tt.wantPID || dir != podDir {
				t.Fatalf("CheckCall = %q, %d, %v; want %q, %d", dir, pid, err, podDir, tt.wantPID)
			}
		})
	}
}

func TestLoadAddedAndLayout(t *testing.T) {
	podDir := t.TempDir()
	pm := schema.BlankPodManifest()
	pm.Volumes = []types.Volume{{Name: *types.MustACName("data"), Kind: "host", Source: "/srv/data"}}
	image := schema.RuntimeImage{ID: *types.NewHashSHA512([]byte("image"))}
	pm.Apps = []schema.RuntimeApp{
		{Name: *types.MustACName("first"), Image: image, App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}},
		{
			Name:   *types.MustACName("web"),
			Image:  image,
			App:    &types.App{Exec: types.Exec{"/bin/httpd"}, User: "0", Group: "0"},
			Mounts: []schema.Mount{{Volume: *types.MustACName("data"), Path: "/data"}},
		},
	}
	data, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, stage1abi.PodManifestFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	args, err := sdpod.ParseRunArgs([]string{"--net=host", "--mutable", testUUID})
	if err != nil {
		t.Fatal(err)
	}
	rec := &Record{Args: args}

	for _, tt := range []struct {
		name string
		args abiargs.AppArgs
		want error
	}{
		{name: "an app the manifest lacks", args: abiargs.AppArgs{UUID: testUUID, App: "none"}, want: errdefs.ErrNotFound},
		{name: "an insecure option the pod lacks", args: abiargs.AppArgs{UUID: testUUID, App: "web", DisableSeccomp: true}, want: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := LoadAdded(podDir, rec, tt.args); !errors.Is(err, tt.want) {
				t.Errorf("LoadAdded = %v, want %v", err, tt.want)
			}
		})
	}

	added, err := LoadAdded(podDir, rec, abiargs.AppArgs{UUID: testUUID, App: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if added.App.Name.String() != "web" || len(added.Manifest.Apps) != 2 {
		t.Fatalf("LoadAdded: app %s of %d, want web of 2", added.App.Name, len(added.Manifest.Apps))
	}
	var logged bytes.Buffer
	layout, err := added.Layout(context.Background(), slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if len(layout.Pod.Apps) != 1 || layout.Pod.Apps[0].Spec.Name != "web" {
		t.Fatalf("layout apps %+v, want web alone", layout.Pod.Apps)
	}
	if len(layout.Binds) == 0 {
		t.Fatal("no bind for the app's host volume")
	}
	for _, b := range layout.Binds {
		if !strings.HasPrefix(b.Target, sdpod.AppBindDir("web")+"/") {
			t.Errorf("bind %+v is not below the app's own bind directory", b)
		}
	}
	if len(added.Manifest.Apps) != 2 {
		t.Errorf("Layout changed the manifest: %d apps", len(added.Manifest.Apps))
	}
}

func TestCheckBinds(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "present")
	if err := os.Mkdir(present, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(present, link); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent")
	tests := []struct {
		name  string
		binds []sdpod.Bind
		want  []string // the sources kept
		err   error
	}{
		{name: "present", binds: []sdpod.Bind{{Source: present}, {Source: link}}, want: []string{present, link}},
		{name: "an optional absent source is dropped", binds: []sdpod.Bind{{Source: absent, Optional: true}, {Source: present}}, want: []string{present}},
		{name: "an absent source", binds: []sdpod.Bind{{Source: present}, {Source: absent}}, err: errdefs.ErrNotFound},
		{name: "no symlinks, none passed", binds: []sdpod.Bind{{Source: present, NoSymlinks: true}}, want: []string{present}},
		{name: "no symlinks, through one", binds: []sdpod.Bind{{Source: link, NoSymlinks: true}}, err: errdefs.ErrNotFound},
		{name: "no symlinks, optional, absent", binds: []sdpod.Bind{{Source: absent, NoSymlinks: true, Optional: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckBinds(context.Background(), discard(), tt.binds)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var sources []string
			for _, b := range got {
				sources = append(sources, b.Source)
			}
			if !slices.Equal(sources, tt.want) {
				t.Errorf("kept %v, want %v", sources, tt.want)
			}
		})
	}
}

func TestAttachments(t *testing.T) {
	got := Attachments("/pods/run/p", "web", []sdpod.Bind{
		{Source: "/srv/data", Target: "/nscn/host/app/web/0", ReadOnly: true, ReadOnlyTop: true, Optional: true},
		{Source: "/srv/tree", Target: "/nscn/host/app/web/1", Recursive: true},
	})
	want := []podattach.Attachment{
		{Source: filepath.Join("/pods/run/p", stage1abi.AppRootfs("web")), Target: sdpod.Stage2Dir + "/web/rootfs", Recursive: true},
		{Source: "/srv/data", Target: "/nscn/host/app/web/0", ReadOnly: true, ReadOnlyTop: true},
		{Source: "/srv/tree", Target: "/nscn/host/app/web/1", Recursive: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Attachments =\n%+v\nwant\n%+v", got, want)
	}
}

func TestWaitStarted(t *testing.T) {
	podDir := t.TempDir()
	exited := "exited"
	if err := os.MkdirAll(filepath.Dir(filepath.Join(podDir, stage1abi.AppStatusFile(exited))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, stage1abi.AppStatusFile(exited)), []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("bus gone")
	tests := []struct {
		name   string
		app    string
		state  string
		later  []string // what ActiveState answers, in turn
		err    error    // ActiveState's error once later is used up
		want   error
		nCalls int
	}{
		{name: "active", app: "web", state: "active"},
		{name: "activating", app: "web", state: "activating"},
		{name: "deactivating, then active", app: "web", state: "deactivating", later: []string{"reloading", "active"}, nCalls: 2},
		{name: "exited at once with a status", app: exited, state: "deactivating", later: []string{"inactive"}, nCalls: 1},
		{name: "failed without a status", app: "web", state: "failed", want: errdefs.ErrFailedPrecondition},
		{name: "inactive after deactivating, no status", app: "web", state: "deactivating", later: []string{"inactive"}, want: errdefs.ErrFailedPrecondition, nCalls: 1},
		{name: "the state cannot be read", app: "web", state: "deactivating", err: boom, want: boom, nCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := WaitStarted(context.Background(), Start{
				PodDir: podDir, App: tt.app, State: tt.state, Poll: 0,
				ActiveState: func(context.Context) (string, error) {
					calls++
					if calls <= len(tt.later) {
						return tt.later[calls-1], nil
					}
					return "", tt.err
				},
			})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if calls != tt.nCalls {
				t.Errorf("ActiveState asked %d times, want %d", calls, tt.nCalls)
			}
		})
	}
}

func TestStartedApps(t *testing.T) {
	podDir := t.TempDir()
	if got := StartedApps(podDir); got != nil {
		t.Errorf("no started directory: %v, want none", got)
	}
	write := func(rel string) {
		t.Helper()
		p := filepath.Join(podDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(stage1abi.AppStartedFile("running"))
	write(stage1abi.AppStartedFile("done"))
	write(stage1abi.AppStatusFile("done"))
	write(stage1abi.AppStartedFile(".running.tmp"))
	if err := os.Mkdir(filepath.Join(podDir, stage1abi.AppStartedFile("a-dir")), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := StartedApps(podDir); !slices.Equal(got, []string{"running"}) {
		t.Errorf("StartedApps = %v, want [running]", got)
	}
}

func TestAppFiles(t *testing.T) {
	files := AppFiles("web")
	for _, p := range files {
		if filepath.IsAbs(p) || !strings.HasPrefix(p, stage1abi.Stage1RootfsRel+"/") || !strings.Contains(p, "web") {
			t.Errorf("%s: want a path of app web's in the stage1 rootfs, relative to the pod directory", p)
		}
	}
	// What app/add and the app's runs make: the FIFOs' directory, the
	// credentials record, the bind directory, the start and status
	// records.
	for _, made := range []string{
		filepath.Join(stage1abi.Stage1RootfsRel, sdpod.AppStdoutFIFO("web")),
		filepath.Join(stage1abi.Stage1RootfsRel, sdpod.AppStderrFIFO("web")),
		filepath.Join(stage1abi.Stage1RootfsRel, sdpod.CredsFile("web")),
		filepath.Join(stage1abi.Stage1RootfsRel, sdpod.AppBindDir("web"), "0"),
		stage1abi.AppStartedFile("web"),
		stage1abi.AppStatusFile("web"),
	} {
		if !slices.ContainsFunc(files, func(p string) bool { return made == p || strings.HasPrefix(made, p+"/") }) {
			t.Errorf("%s is not removed with AppFiles %v", made, files)
		}
	}
	if other := AppFiles("webx"); slices.ContainsFunc(other, func(p string) bool { return slices.Contains(files, p) }) {
		t.Errorf("app webx's files %v share one with web's %v", other, files)
	}
}
