package oci

import (
	"errors"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

const testHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseReference(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		transport Transport
		canonical string // Reference.String()
		registry  string
		tag       string
		path, ref string
		pinned    bool
	}{
		{name: "hub short name", in: "docker://busybox", transport: Docker, canonical: "docker://index.docker.io/library/busybox:latest", registry: "index.docker.io", tag: "latest"},
		{name: "hub short name with tag", in: "docker://busybox:1.36", transport: Docker, canonical: "docker://index.docker.io/library/busybox:1.36", registry: "index.docker.io", tag: "1.36"},
		{name: "hub user repo", in: "docker://someone/app", transport: Docker, canonical: "docker://index.docker.io/someone/app:latest", registry: "index.docker.io", tag: "latest"},
		{name: "docker.io alias", in: "docker://docker.io/library/busybox", transport: Docker, canonical: "docker://index.docker.io/library/busybox:latest", registry: "index.docker.io", tag: "latest"},
		{name: "registry with port", in: "docker://127.0.0.1:5000/team/app:v1", transport: Docker, canonical: "docker://127.0.0.1:5000/team/app:v1", registry: "127.0.0.1:5000", tag: "v1"},
		{name: "localhost", in: "docker://localhost:5000/app", transport: Docker, canonical: "docker://localhost:5000/app:latest", registry: "localhost:5000", tag: "latest"},
		{name: "digest", in: "docker://quay.io/coreos/etcd@sha256:" + testHex, transport: Docker, canonical: "docker://quay.io/coreos/etcd@sha256:" + testHex, registry: "quay.io", pinned: true},
		{name: "tag and digest: digest wins", in: "docker://busybox:1.36@sha256:" + testHex, transport: Docker, canonical: "docker://index.docker.io/library/busybox@sha256:" + testHex, registry: "index.docker.io", pinned: true},
		{name: "layout", in: "oci:/srv/layout", transport: Layout, canonical: "oci:/srv/layout", path: "/srv/layout"},
		{name: "layout with ref", in: "oci:/srv/layout:v2", transport: Layout, canonical: "oci:/srv/layout:v2", path: "/srv/layout", ref: "v2"},
		{name: "layout with digest", in: "oci:dir:sha256:" + testHex, transport: Layout, canonical: "oci:dir@sha256:" + testHex, path: "dir", pinned: true},
		{name: "layout with @digest", in: "oci:dir@sha256:" + testHex, transport: Layout, canonical: "oci:dir@sha256:" + testHex, path: "dir", pinned: true},
		{name: "oci archive", in: "oci-archive:img.tar", transport: OCIArchive, canonical: "oci-archive:img.tar", path: "img.tar"},
		{name: "docker archive with repo tag", in: "docker-archive:save.tar:busybox:latest", transport: DockerArchive, canonical: "docker-archive:save.tar:busybox:latest", path: "save.tar", ref: "busybox:latest"},
		{name: "docker archive pinned by config digest", in: "docker-archive:save.tar@sha256:" + testHex, transport: DockerArchive, canonical: "docker-archive:save.tar@sha256:" + testHex, path: "save.tar", pinned: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseReference(tt.in)
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.in, err)
			}
			if r.Transport != tt.transport || r.String() != tt.canonical || r.Pinned() != tt.pinned {
				t.Errorf("got transport %q, %q, pinned %v; want %q, %q, %v", r.Transport, r.String(), r.Pinned(), tt.transport, tt.canonical, tt.pinned)
			}
			if tt.transport == Docker {
				if got := r.Name.Context().RegistryStr(); got != tt.registry {
					t.Errorf("registry %q, want %q", got, tt.registry)
				}
				if r.Tag() != tt.tag {
					t.Errorf("tag %q, want %q", r.Tag(), tt.tag)
				}
			} else if r.Path != tt.path || r.Ref != tt.ref {
				t.Errorf("path %q ref %q, want %q %q", r.Path, r.Ref, tt.path, tt.ref)
			}
			if !IsReference(tt.in) {
				t.Errorf("IsReference(%q) is false", tt.in)
			}
		})
	}
}

func TestParseReferenceRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "no transport", in: "busybox"},
		{name: "unknown transport", in: "dir:/tmp/x"},
		{name: "empty docker", in: "docker://"},
		{name: "upper case repository", in: "docker://BusyBox"},
		{name: "bad tag", in: "docker://busybox:-x"},
		{name: "short digest", in: "docker://busybox@sha256:abc"},
		{name: "sha512 digest", in: "docker://busybox@sha512:" + testHex + testHex},
		{name: "empty layout path", in: "oci:"},
		{name: "layout bad digest", in: "oci:dir@sha256:xyz"},
		{name: "control character", in: "docker://busy\nbox"},
		{name: "too long", in: "oci:" + strings.Repeat("a", maxRefLen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReference(tt.in)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseReference(%q) = %v, want an InvalidArgument error", tt.in, err)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"docker://busybox", "docker://127.0.0.1:5000/a/b:c", "docker://a@sha256:" + testHex,
		"oci:dir:ref", "oci-archive:f@sha256:" + testHex, "docker-archive:f:a:b", "docker://", "oci::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error of the wrong class: %v", err)
			}
			return
		}
		// The canonical form parses to itself.
		again, err := ParseReference(r.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", r.String(), s, err)
		}
		if again.String() != r.String() || again.Pinned() != r.Pinned() {
			t.Fatalf("%q -> %q -> %q", s, r.String(), again.String())
		}
	})
}
