package prepare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/nosecone/nscn/internal/oci"
)

func ociManifest(t *testing.T, entrypoint, cmd []string) *schema.ImageManifest {
	t.Helper()
	m, _, err := oci.Convert(&v1.ConfigFile{Architecture: "amd64", Config: v1.Config{Entrypoint: entrypoint, Cmd: cmd}}, oci.App{Name: "example.com/app"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEffectiveAppOCIExec(t *testing.T) {
	tests := []struct {
		name       string
		entrypoint []string
		cmd        []string
		exec       string
		args       []string
		want       string
	}{
		{name: "entrypoint and cmd", entrypoint: []string{"/ep", "-x"}, cmd: []string{"c1", "c2"}, want: "/ep -x c1 c2"},
		{name: "arguments replace cmd", entrypoint: []string{"/ep"}, cmd: []string{"c1"}, args: []string{"a1", "a2"}, want: "/ep a1 a2"},
		{name: "exec replaces the entrypoint and drops cmd", entrypoint: []string{"/ep"}, cmd: []string{"c1"}, exec: "/bin/sh", want: "/bin/sh"},
		{name: "exec with arguments", entrypoint: []string{"/ep"}, cmd: []string{"c1"}, exec: "/bin/sh", args: []string{"-c", "id"}, want: "/bin/sh -c id"},
		{name: "cmd only, arguments replace it", cmd: []string{"sh"}, args: []string{"ls", "/"}, want: "ls /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, err := effectiveApp(ociManifest(t, tt.entrypoint, tt.cmd), App{Exec: tt.exec, Args: tt.args}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(app.Exec, " "); got != tt.want {
				t.Errorf("exec %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEffectiveAppACIExecUnchanged(t *testing.T) {
	m := schema.BlankImageManifest()
	m.Name = "example.com/aci"
	m.App = &types.App{Exec: types.Exec{"/bin/app", "x"}, User: "0", Group: "0"}
	app, err := effectiveApp(m, App{Args: []string{"y"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(app.Exec, " "); got != "/bin/app x y" {
		t.Errorf("exec %q: arguments are appended to an ACI's exec", got)
	}
}

func TestLookupPrimaryGID(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\nweb:x:33:44::/srv:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "etc", "passwd"), []byte("web:x:33:999::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	evil := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "etc"), filepath.Join(evil, "etc")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, root, user, want string
		wantErr                bool
	}{
		{name: "by name", root: root, user: "web", want: "44"},
		{name: "by uid", root: root, user: "33", want: "44"},
		{name: "unknown user", root: root, user: "nobody", want: "0"},
		{name: "no passwd", root: t.TempDir(), user: "web", want: "0"},
		{name: "symlink out of the image", root: evil, user: "web", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookupPrimaryGID(tt.root, tt.user)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("read the host's file: gid %s", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
