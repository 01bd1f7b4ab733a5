package aci

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

const fullManifest = `{
  "acKind": "ImageManifest",
  "acVersion": "0.8.11",
  "name": "example.com/reduce-worker",
  "labels": [{"name": "version", "value": "1.0.0"}, {"name": "os", "value": "linux"}, {"name": "arch", "value": "amd64"}],
  "app": {"exec": ["/usr/bin/reduce-worker"], "user": "100", "group": "300"},
  "dependencies": [{"imageName": "example.com/base", "labels": [{"name": "os", "value": "linux"}]}],
  "pathWhitelist": ["/etc/reduce-worker.conf", "/usr/bin/reduce-worker", "/etc/systemd/system/"]
}`

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the message; "" means success
	}{
		{name: "minimal", in: testManifest},
		{name: "full", in: fullManifest},
		{name: "not JSON", in: `{"acKind": `, wantErr: "parse image manifest"},
		{name: "trailing garbage", in: testManifest + `x`, wantErr: "parse image manifest"},
		{name: "empty", in: ``, wantErr: "parse image manifest"},
		{name: "JSON array", in: `[]`, wantErr: "parse image manifest"},
		{name: "wrong kind", in: `{"acKind":"PodManifest","acVersion":"0.8.11","name":"example.com/x"}`, wantErr: "ACKind"},
		{name: "no version", in: `{"acKind":"ImageManifest","name":"example.com/x"}`, wantErr: "acVersion"},
		{name: "no name", in: `{"acKind":"ImageManifest","acVersion":"0.8.11"}`, wantErr: "name"},
		{name: "bad name", in: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Not A Name"}`, wantErr: "parse image manifest"},
		{name: "relative whitelist entry", in: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","pathWhitelist":["etc/passwd"]}`, wantErr: "not an absolute path"},
		{name: "dependency without name", in: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","dependencies":[{}]}`, wantErr: "parse image manifest"},
		{name: "bad dependency image ID", in: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","dependencies":[{"imageName":"example.com/y","imageID":"md5-00"}]}`, wantErr: "parse image manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseManifest: %v", err)
				}
				if m.Name.Empty() {
					t.Fatal("parsed manifest has no name")
				}
				return
			}
			if err == nil {
				t.Fatal("ParseManifest accepted a bad manifest")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v is not InvalidArgument", err)
			}
			if !strings.HasPrefix(err.Error(), "parse image manifest: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not start with the step or lacks %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadManifest(t *testing.T) {
	tests := []struct {
		name      string
		tar       func(testing.TB) []byte
		wantClass error // nil means success
	}{
		{name: "manifest first", tar: func(t testing.TB) []byte {
			return buildTar(t, ent{name: "manifest", typ: '0', body: fullManifest}, dirEnt("rootfs", 0o755))
		}},
		{name: "dot-slash manifest after rootfs", tar: func(t testing.TB) []byte {
			return buildTar(t, dirEnt("./rootfs/", 0o755), fileEnt("./rootfs/x", "x"), ent{name: "./manifest", typ: '0', body: fullManifest})
		}},
		{name: "missing", tar: func(t testing.TB) []byte {
			return buildTar(t, dirEnt("rootfs", 0o755), fileEnt("rootfs/manifest", fullManifest))
		}, wantClass: errdefs.ErrInvalidArgument},
		{name: "manifest is a directory", tar: func(t testing.TB) []byte {
			return buildTar(t, dirEnt("manifest/", 0o755))
		}, wantClass: errdefs.ErrInvalidArgument},
		{name: "manifest is a symlink", tar: func(t testing.TB) []byte {
			return buildTar(t, symlinkEnt("manifest", "/etc/passwd"))
		}, wantClass: errdefs.ErrInvalidArgument},
		{name: "invalid manifest", tar: func(t testing.TB) []byte {
			return buildTar(t, ent{name: "manifest", typ: '0', body: `{}`})
		}, wantClass: errdefs.ErrInvalidArgument},
		{name: "too large", tar: func(t testing.TB) []byte {
			return buildTar(t, ent{name: "manifest", typ: '0', body: strings.Repeat(" ", MaxManifestSize+1)})
		}, wantClass: ErrTooLarge},
		{name: "not a tar", tar: func(testing.TB) []byte { return bytes.Repeat([]byte("x"), 2048) }, wantClass: errdefs.ErrInvalidArgument},
		{name: "truncated tar", tar: func(t testing.TB) []byte {
			b := buildTar(t, fileEnt("rootfs/big", strings.Repeat("y", 4096)), ent{name: "manifest", typ: '0', body: fullManifest})
			return b[:1024]
		}, wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, raw, err := ReadManifest(bytes.NewReader(tt.tar(t)))
			if tt.wantClass == nil {
				if err != nil {
					t.Fatalf("ReadManifest: %v", err)
				}
				if string(raw) != fullManifest || m.Name.String() != "example.com/reduce-worker" {
					t.Fatalf("got %q / %q", m.Name, raw)
				}
				return
			}
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("error = %v, want %v", err, tt.wantClass)
			}
		})
	}
}

// FuzzParseManifest checks that no input makes the parser panic, that every
// failure is InvalidArgument, and that an accepted manifest survives a
// round trip through its own encoding.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(testManifest))
	f.Add([]byte(fullManifest))
	f.Add([]byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","pathWhitelist":["/a","b"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		if _, err := ParseManifest(out); err != nil {
			t.Fatalf("re-encoded manifest %s rejected: %v", out, err)
		}
	})
}

func TestParseManifestRefusesIsolatorWithoutValue(t *testing.T) {
	tests := []struct {
		name string
		json string
	}{
		{name: "missing value", json: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/p","app":{"exec":["/x"],"user":"0","group":"0","isolators":[{"name":"os/linux/capabilities-retain-set"}]}}`},
		{name: "null value", json: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/p","app":{"exec":["/x"],"user":"0","group":"0","isolators":[{"name":"resource/memory","value":null}]}}`},
		{name: "isolator not an object", json: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/p","app":{"exec":["/x"],"user":"0","group":"0","isolators":[3]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.json))
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseManifest = %v, want InvalidArgument", err)
			}
		})
	}
}
