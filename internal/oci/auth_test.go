package oci

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParseAuthFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		hosts   string
		docker  bool
		want    authn.AuthConfig
		wantErr bool
	}{
		{
			name:  "basic",
			in:    `{"rktKind":"auth","rktVersion":"v1","domains":["Example.com","b.example"],"type":"basic","credentials":{"user":"u","password":"p"}}`,
			hosts: "example.com,b.example", want: authn.AuthConfig{Username: "u", Password: "p"},
		},
		{
			name:  "oauth",
			in:    `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"t"}}`,
			hosts: "example.com", want: authn.AuthConfig{RegistryToken: "t"},
		},
		{
			name:  "dockerAuth, Hub names folded",
			in:    `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["docker.io","quay.io"],"credentials":{"user":"u","password":"p"}}`,
			hosts: "index.docker.io,quay.io", docker: true, want: authn.AuthConfig{Username: "u", Password: "p"},
		},
		{name: "unknown kind", in: `{"rktKind":"paths","rktVersion":"v1"}`, wantErr: true},
		{name: "wrong version", in: `{"rktKind":"auth","rktVersion":"v2","domains":["a"],"type":"basic","credentials":{"user":"u","password":"p"}}`, wantErr: true},
		{name: "unknown field", in: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u","password":"p"},"extra":1}`, wantErr: true},
		{name: "no domains", in: `{"rktKind":"auth","rktVersion":"v1","type":"basic","credentials":{"user":"u","password":"p"}}`, wantErr: true},
		{name: "basic without password", in: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u"}}`, wantErr: true},
		{name: "unknown type", in: `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"digest","credentials":{"user":"u","password":"p"}}`, wantErr: true},
		{name: "dockerAuth with domains", in: `{"rktKind":"dockerAuth","rktVersion":"v1","domains":["a"],"registries":["a"],"credentials":{"user":"u","password":"p"}}`, wantErr: true},
		{name: "host with a path", in: `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["a/b"],"credentials":{"user":"u","password":"p"}}`, wantErr: true},
		{name: "not JSON", in: `user=u`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts, docker, cfg, err := parseAuthFile([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("got %v, want InvalidArgument", err)
				}
				if err != nil && strings.Contains(err.Error(), `"p"`) {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(hosts, ",") != tt.hosts || docker != tt.docker || cfg != tt.want {
				t.Errorf("got %v %v %+v", hosts, docker, cfg)
			}
		})
	}
}

func FuzzParseAuthFile(f *testing.F) {
	f.Add([]byte(`{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u","password":"p"}}`))
	f.Add([]byte(`{"rktKind":"dockerAuth","rktVersion":"v1","registries":["docker.io"],"credentials":{"user":"u","password":"p"}}`))
	f.Add([]byte(`{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"oauth","credentials":{"token":"t"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, _, cfg, err := parseAuthFile(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		if len(hosts) == 0 || (cfg.Username == "" && cfg.RegistryToken == "") {
			t.Fatalf("accepted a file without hosts or credentials: %q", data)
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/ ") || h != strings.ToLower(h) {
				t.Fatalf("host %q", h)
			}
		}
	})
}

func writeAuth(t *testing.T, dir, file, content string) {
	t.Helper()
	d := filepath.Join(dir, AuthDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, file), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func basicFile(kind, host, user string) string {
	if kind == "dockerAuth" {
		return `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["` + host + `"],"credentials":{"user":"` + user + `","password":"pw"}}`
	}
	return `{"rktKind":"auth","rktVersion":"v1","domains":["` + host + `"],"type":"basic","credentials":{"user":"` + user + `","password":"pw"}}`
}

func TestKeychainPrecedence(t *testing.T) {
	user, local, system := t.TempDir(), t.TempDir(), t.TempDir()
	writeAuth(t, system, "10.json", basicFile("dockerAuth", "a.example", "system"))
	writeAuth(t, system, "20.json", basicFile("dockerAuth", "b.example", "system"))
	writeAuth(t, local, "10.json", basicFile("dockerAuth", "a.example", "local-10"))
	writeAuth(t, local, "20.json", basicFile("dockerAuth", "a.example", "local-20"))
	writeAuth(t, user, "10.json", basicFile("auth", "c.example", "user-auth"))
	writeAuth(t, local, "30.json", basicFile("dockerAuth", "c.example", "local-docker"))
	writeAuth(t, user, "20.json", basicFile("dockerAuth", "docker.io", "hub"))
	k := NewKeychain(user, local, system)
	tests := []struct{ repo, want string }{
		{repo: "a.example/x", want: "local-20"},  // local beats system; the later file wins
		{repo: "b.example/x", want: "system"},    // only the system dir names it
		{repo: "c.example/x", want: "user-auth"}, // the user's dir first, whatever the kind
		{repo: "busybox", want: "hub"},           // docker.io is index.docker.io
		{repo: "d.example/x", want: ""},          // anonymous
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			ref, err := name.NewRepository(tt.repo)
			if err != nil {
				t.Fatal(err)
			}
			a, err := k.Resolve(ref)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Username != tt.want {
				t.Errorf("user %q, want %q", cfg.Username, tt.want)
			}
		})
	}
}

func TestKeychainBadFile(t *testing.T) {
	dir := t.TempDir()
	writeAuth(t, dir, "bad.json", `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u","password":"secret"}, "x": 1}`)
	_, err := NewKeychain(dir).Resolve(name.MustParseReference("a/b").Context())
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "bad.json") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v, want an InvalidArgument error naming the file and not the secret", err)
	}
}
