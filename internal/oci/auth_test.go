package oci

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/nosecone/nscn/internal/authconfig"
	"github.com/nosecone/nscn/internal/errdefs"
)

func writeAuth(t *testing.T, dir, file, content string) {
	t.Helper()
	d := filepath.Join(dir, authconfig.Dir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, file), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func authFile(kind, host, user string) string {
	switch kind {
	case "dockerAuth":
		return `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["` + host + `"],"credentials":{"user":"` + user + `","password":"pw"}}`
	case "oauth":
		return `{"rktKind":"auth","rktVersion":"v1","domains":["` + host + `"],"type":"oauth","credentials":{"token":"` + user + `"}}`
	}
	return `{"rktKind":"auth","rktVersion":"v1","domains":["` + host + `"],"type":"basic","credentials":{"user":"` + user + `","password":"pw"}}`
}

func TestKeychainPrecedence(t *testing.T) {
	user, local, system := t.TempDir(), t.TempDir(), t.TempDir()
	writeAuth(t, system, "10.json", authFile("dockerAuth", "a.example", "system"))
	writeAuth(t, system, "20.json", authFile("dockerAuth", "b.example", "system"))
	writeAuth(t, local, "10.json", authFile("dockerAuth", "a.example", "local"))
	writeAuth(t, local, "15.json", authFile("auth", "a.example", "local-auth"))
	writeAuth(t, user, "10.json", authFile("auth", "c.example", "user-auth"))
	writeAuth(t, local, "30.json", authFile("dockerAuth", "c.example", "local-docker"))
	writeAuth(t, user, "20.json", authFile("dockerAuth", "docker.io", "hub"))
	writeAuth(t, system, "40.json", authFile("oauth", "e.example", "tok"))
	k := NewKeychain(user, local, system)
	tests := []struct {
		repo string
		want authn.AuthConfig
	}{
		{repo: "a.example/x", want: authn.AuthConfig{Username: "local", Password: "pw"}},     // local beats system; dockerAuth beats auth in one dir
		{repo: "b.example/x", want: authn.AuthConfig{Username: "system", Password: "pw"}},    // only the system dir names it
		{repo: "c.example/x", want: authn.AuthConfig{Username: "user-auth", Password: "pw"}}, // the user's dir first, whatever the kind
		{repo: "busybox", want: authn.AuthConfig{Username: "hub", Password: "pw"}},           // docker.io is index.docker.io
		{repo: "e.example/x", want: authn.AuthConfig{RegistryToken: "tok"}},                  // oauth: a bearer token
		{repo: "d.example/x"}, // anonymous
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
			if *cfg != tt.want {
				t.Errorf("got %+v, want %+v", *cfg, tt.want)
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
