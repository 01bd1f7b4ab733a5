package oci

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestTarFilesSymlinks checks that a member symlink (docker save's shared
// layers) reads its target's content, and that a link out of the archive
// reads nothing of the host.
func TestTarFilesSymlinks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.tar")
	f, err := os.Create(p) //nolint:forbidigo,gosec // a test file in the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	write := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(&tar.Header{Name: "abc/layer.tar", Typeflag: tar.TypeReg, Mode: 0o644}, "content")
	write(&tar.Header{Name: "def/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../abc/layer.tar"}, "")
	write(&tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "")
	write(&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc/passwd"}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	tf, err := openTar(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tf.Close() }()
	tests := []struct {
		name, member, want string
		wantErr            bool
	}{
		{name: "regular", member: "abc/layer.tar", want: "content"},
		{name: "link to a member", member: "def/layer.tar", want: "content"},
		{name: "absolute link", member: "evil", wantErr: true},
		{name: "link climbing out", member: "up", wantErr: true},
		{name: "missing", member: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := tf.open(tt.member)
			if tt.wantErr {
				if err == nil {
					t.Fatal("opened")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			if string(b) != tt.want {
				t.Errorf("read %q", b)
			}
		})
	}
}
