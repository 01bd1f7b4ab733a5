package mds

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestRegistrationValidation(t *testing.T) {
	ip := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	tests := []struct {
		name   string
		change func(r *Registration)
		class  error // nil: valid
	}{
		{name: "valid by address", change: func(*Registration) {}},
		{name: "valid by token", change: func(r *Registration) { r.Token, r.IPs = tokenB, nil }},
		{name: "token with loopback", change: func(r *Registration) { r.Token, r.IPs = tokenB, ip("127.0.0.1") }},
		{name: "ipv6", change: func(r *Registration) { r.IPs = ip("fd00::2") }},
		{name: "uuid without dashes", change: func(r *Registration) { r.UUID = strings.ReplaceAll(uuidA, "-", "") }},
		{name: "duplicate address collapses", change: func(r *Registration) { r.IPs = append(ip("10.9.0.2"), ip("::ffff:10.9.0.2")...) }},
		{name: "bad uuid", change: func(r *Registration) { r.UUID = "nope" }, class: errdefs.ErrInvalidArgument},
		{name: "no manifest", change: func(r *Registration) { r.PodManifest = nil }, class: errdefs.ErrInvalidArgument},
		{name: "not a pod manifest", change: func(r *Registration) { r.PodManifest = imageManifest("web") }, class: errdefs.ErrInvalidArgument},
		{name: "missing image manifest", change: func(r *Registration) { delete(r.ImageManifests, "web") }, class: errdefs.ErrInvalidArgument},
		{name: "extra image manifest", change: func(r *Registration) { r.ImageManifests["ghost"] = imageManifest("ghost") }, class: errdefs.ErrInvalidArgument},
		{name: "bad image manifest", change: func(r *Registration) { r.ImageManifests["web"] = json.RawMessage(`{"acKind":"PodManifest"}`) }, class: errdefs.ErrInvalidArgument},
		{name: "no image id", change: func(r *Registration) {
			r.PodManifest = json.RawMessage(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[{"name":"web","image":{}}]}`)
		}, class: errdefs.ErrInvalidArgument},
		{name: "no credential", change: func(r *Registration) { r.IPs = nil }, class: errdefs.ErrInvalidArgument},
		{name: "loopback without token", change: func(r *Registration) { r.IPs = ip("127.0.0.1") }, class: errdefs.ErrInvalidArgument},
		{name: "unspecified without token", change: func(r *Registration) { r.IPs = ip("::") }, class: errdefs.ErrInvalidArgument},
		{name: "multicast", change: func(r *Registration) { r.IPs = ip("224.0.0.1") }, class: errdefs.ErrInvalidArgument},
		{name: "zone", change: func(r *Registration) { r.IPs = ip("fe80::1%eth0") }, class: errdefs.ErrInvalidArgument},
		{name: "invalid address", change: func(r *Registration) { r.IPs = []netip.Addr{{}} }, class: errdefs.ErrInvalidArgument},
		{name: "short token", change: func(r *Registration) { r.Token = "abc" }, class: errdefs.ErrInvalidArgument},
		{name: "long token", change: func(r *Registration) { r.Token = strings.Repeat("a", maxTokenLen+1) }, class: errdefs.ErrInvalidArgument},
		{name: "token with slash", change: func(r *Registration) { r.Token = tokenB[:30] + "/" + tokenB[31:] }, class: errdefs.ErrInvalidArgument},
		{name: "token is uuid", change: func(r *Registration) { r.Token = uuidA }, class: errdefs.ErrInvalidArgument},
		{name: "token is uuid without dashes", change: func(r *Registration) { r.Token = strings.ToUpper(strings.ReplaceAll(uuidA, "-", "")) }, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := regA()
			tt.change(&r)
			err := NewServer(testLogger(t)).Register(r)
			switch {
			case tt.class == nil && err != nil:
				t.Fatalf("Register: %v", err)
			case tt.class != nil && !errors.Is(err, tt.class):
				t.Fatalf("Register = %v, want class %v", err, tt.class)
			}
		})
	}
}

func TestRegisterConflicts(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Registration) // applied to a copy of B
	}{
		{name: "same uuid", change: func(r *Registration) { r.UUID = uuidA; r.IPs = nil }},
		{name: "same uuid other form", change: func(r *Registration) { r.UUID = strings.ToUpper(uuidA); r.IPs = nil }},
		{name: "same token", change: func(r *Registration) { r.UUID = uuidC; r.IPs = nil }},
		{name: "address of an address pod", change: func(r *Registration) { r.UUID, r.Token = uuidC, ""; r.IPs = regA().IPs }},
		{name: "address of a token pod", change: func(r *Registration) {
			r.UUID, r.Token = uuidC, ""
			r.IPs = regB().IPs
		}},
		{name: "token pod on address of an address pod", change: func(r *Registration) {
			r.UUID, r.Token = uuidC, "X4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T5y"
			r.IPs = regA().IPs
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t)
			r := regB()
			tt.change(&r)
			if err := s.Register(r); !errors.Is(err, errdefs.ErrAlreadyExists) {
				t.Fatalf("Register = %v, want AlreadyExists", err)
			}
		})
	}
	t.Run("address free again after unregister", func(t *testing.T) {
		s := newTestServer(t)
		if err := s.Unregister(uuidA); err != nil {
			t.Fatal(err)
		}
		r := regA()
		r.UUID = uuidC
		if err := s.Register(r); err != nil {
			t.Fatalf("Register on a freed address: %v", err)
		}
	})
	t.Run("unregister unknown", func(t *testing.T) {
		if err := NewServer(testLogger(t)).Unregister(uuidC); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("Unregister = %v, want NotFound", err)
		}
	})
	t.Run("unregister bad uuid", func(t *testing.T) {
		if err := NewServer(testLogger(t)).Unregister("x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("Unregister = %v, want InvalidArgument", err)
		}
	})
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := mdsclient.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 || seen[tok] {
			t.Fatalf("token %q: length %d or repeated", tok, len(tok))
		}
		seen[tok] = true
		r := regA()
		r.Token = tok
		if err := NewServer(testLogger(t)).Register(r); err != nil {
			t.Fatalf("a NewToken token is refused: %v", err)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		port  int
		token string
		want  string
	}{
		{name: "v4 token", host: "172.16.28.1", port: DefaultPort, token: tokenB, want: "http://172.16.28.1:18112/" + tokenB},
		{name: "v4 bare", host: "172.16.28.1", port: 80, want: "http://172.16.28.1:80"},
		{name: "v6", host: "fd00::1", port: DefaultPort, token: "t", want: "http://[fd00::1]:18112/t"},
		{name: "mapped", host: "::ffff:10.0.0.1", port: 1, want: "http://10.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mdsclient.MetadataURL(netip.MustParseAddr(tt.host), tt.port, tt.token); got != tt.want {
				t.Fatalf("MetadataURL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFromPodDir(t *testing.T) {
	writeFile := func(t *testing.T, path string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("complete", func(t *testing.T) {
		dir := t.TempDir()
		b := regB()
		writeFile(t, filepath.Join(dir, stage1abi.PodManifestFile), b.PodManifest)
		for name, im := range b.ImageManifests {
			writeFile(t, filepath.Join(dir, stage1abi.AppInfoDir(name), stage1abi.AppManifestFile), im)
		}
		r, err := mdsclient.FromPodDir(dir, uuidB)
		if err != nil {
			t.Fatal(err)
		}
		if r.UUID != uuidB || string(r.PodManifest) != string(b.PodManifest) || len(r.ImageManifests) != 2 ||
			string(r.ImageManifests["db"]) != string(b.ImageManifests["db"]) {
			t.Fatalf("FromPodDir = %+v", r)
		}
		r.Token = tokenB
		if err := NewServer(testLogger(t)).Register(r); err != nil {
			t.Fatalf("register what FromPodDir read: %v", err)
		}
	})
	t.Run("missing app manifest", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, stage1abi.PodManifestFile), regB().PodManifest)
		if _, err := mdsclient.FromPodDir(dir, uuidB); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("FromPodDir = %v, want NotFound", err)
		}
	})
	t.Run("missing pod manifest", func(t *testing.T) {
		if _, err := mdsclient.FromPodDir(t.TempDir(), uuidB); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("FromPodDir = %v, want NotFound", err)
		}
	})
	t.Run("bad pod manifest", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, stage1abi.PodManifestFile), []byte("{"))
		if _, err := mdsclient.FromPodDir(dir, uuidB); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("FromPodDir = %v, want InvalidArgument", err)
		}
	})
}
