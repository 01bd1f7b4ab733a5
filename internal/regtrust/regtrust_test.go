package regtrust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // normalised repositories; nil: refused
		errHas   string
	}{
		{"host", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["Registry.K8s.IO"],"acceptTags":true}`, []string{"registry.k8s.io"}, ""},
		{"host port and path", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["127.0.0.1:5000/team/"],"acceptTags":true}`, []string{"127.0.0.1:5000/team"}, ""},
		{"docker hub", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["docker.io/library"],"acceptTags":true}`, []string{"index.docker.io/library"}, ""},
		{"localhost", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["localhost"],"acceptTags":true}`, []string{"localhost"}, ""},
		{"wrong kind", `{"nscnKind":"auth","nscnVersion":"v1","repositories":["a.io"],"acceptTags":true}`, nil, "kind"},
		{"wrong version", `{"nscnKind":"registryTrust","nscnVersion":"v2","repositories":["a.io"],"acceptTags":true}`, nil, "version"},
		{"accept false", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io"],"acceptTags":false}`, nil, "acceptTags"},
		{"accept missing", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io"]}`, nil, "acceptTags"},
		{"no repositories", `{"nscnKind":"registryTrust","nscnVersion":"v1","acceptTags":true}`, nil, "no repositories"},
		{"unknown field", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io"],"acceptTags":true,"insecure":true}`, nil, "unknown field"},
		{"two values", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io"],"acceptTags":true}{}`, nil, "more than one"},
		{"scheme", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["https://a.io"],"acceptTags":true}`, nil, "scheme"},
		{"pattern", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["*.a.io"],"acceptTags":true}`, nil, "pattern"},
		{"tag", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io/app:v1"],"acceptTags":true}`, nil, "no tag"},
		{"digest", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io/app@sha256:00"],"acceptTags":true}`, nil, "digest"},
		{"not a host", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["library/busybox"],"acceptTags":true}`, nil, "registry host"},
		{"empty component", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["a.io//x"],"acceptTags":true}`, nil, "empty component"},
		{"empty", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":[""],"acceptTags":true}`, nil, "empty"},
		{"control", "{\"nscnKind\":\"registryTrust\",\"nscnVersion\":\"v1\",\"repositories\":[\"a.io/\\u00e9\"],\"acceptTags\":true}", nil, "ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse([]byte(tt.in))
			if tt.want == nil {
				if err == nil || !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("Parse = %v, %v; want an invalid-argument error with %q", e, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(e.Repositories, ",") != strings.Join(tt.want, ",") || !e.AcceptTags {
				t.Fatalf("got %+v, want %v", e, tt.want)
			}
		})
	}
}

func TestAcceptsTag(t *testing.T) {
	p := &Policy{Entries: []*Entry{
		{Repositories: []string{"registry.k8s.io", "quay.io/team"}, File: "a.json"},
		{Repositories: []string{"index.docker.io/library"}, File: "b.json"},
	}}
	tests := []struct {
		registry, repo string
		want           string // file; "" refused
	}{
		{"registry.k8s.io", "pause", "a.json"},
		{"REGISTRY.k8s.io", "e2e-test-images/busybox", "a.json"},
		{"quay.io", "team/app", "a.json"},
		{"quay.io", "team", "a.json"},
		{"quay.io", "teammate/app", ""},
		{"quay.io", "other/team", ""},
		{"docker.io", "library/busybox", "b.json"},
		{"index.docker.io", "library/busybox", "b.json"},
		{"index.docker.io", "someone/busybox", ""},
		{"registry.k8s.io.evil.com", "pause", ""},
		{"gcr.io", "pause", ""},
	}
	for _, tt := range tests {
		ok, file := p.AcceptsTag(tt.registry, tt.repo)
		if ok != (tt.want != "") || file != tt.want {
			t.Errorf("AcceptsTag(%q, %q) = %v, %q; want %q", tt.registry, tt.repo, ok, file, tt.want)
		}
	}
	var none *Policy
	if ok, _ := none.AcceptsTag("registry.k8s.io", "pause"); ok {
		t.Error("a nil policy trusts a tag")
	}
}

func TestLoadDirs(t *testing.T) {
	local, system := t.TempDir(), t.TempDir()
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, Dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, Dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(local, "k8s.json", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["registry.k8s.io"],"acceptTags":true}`)
	write(local, "notes.txt", `not json, not read`)
	write(system, "gcr.json", `{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["gcr.io"],"acceptTags":true}`)
	p, err := LoadDirs("", local, system, filepath.Join(t.TempDir(), "missing"))
	if err != nil {
		t.Fatal(err)
	}
	for _, reg := range []string{"registry.k8s.io", "gcr.io"} {
		if ok, file := p.AcceptsTag(reg, "pause"); !ok || !strings.HasSuffix(file, ".json") {
			t.Errorf("%s not trusted (%v, %q)", reg, ok, file)
		}
	}
	write(system, "broken.json", `{"nscnKind":"registryTrust"}`)
	if _, err := LoadDirs(local, system); err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Fatalf("a broken file: %v, want an error naming it", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["registry.k8s.io","a.io:5000/x/"],"acceptTags":true}`))
	f.Add([]byte(`{"nscnKind":"registryTrust","nscnVersion":"v1","repositories":["docker.io/library"],"acceptTags":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		// What Parse accepts is normalised: parsing it again changes
		// nothing, and it never trusts everything.
		for _, r := range e.Repositories {
			n, err := normalise(r)
			if err != nil || n != r {
				t.Fatalf("normalise(%q) = %q, %v", r, n, err)
			}
			if r == "" || strings.HasSuffix(r, "/") || strings.ContainsAny(r, "*@") {
				t.Fatalf("accepted prefix %q", r)
			}
		}
	})
}
