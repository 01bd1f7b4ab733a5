package aci

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestRootfsRelPath(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		rel      string
		inRootfs bool
		wantErr  bool
	}{
		{name: "plain", in: "rootfs/bin/sh", rel: "bin/sh", inRootfs: true},
		{name: "dot slash", in: "./rootfs/bin/sh", rel: "bin/sh", inRootfs: true},
		{name: "leading slash", in: "/rootfs/bin/sh", rel: "bin/sh", inRootfs: true},
		{name: "doubled slashes and dots", in: "rootfs//bin/./sh/", rel: "bin/sh", inRootfs: true},
		{name: "rootfs itself", in: "rootfs/", rel: ".", inRootfs: true},
		{name: "manifest", in: "manifest"},
		{name: "lookalike", in: "rootfsx/bin"},
		{name: "empty", in: ""},
		{name: "dot-dot", in: "rootfs/../etc/passwd", wantErr: true},
		{name: "trailing dot-dot", in: "rootfs/bin/..", wantErr: true},
		{name: "NUL", in: "rootfs/a\x00b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel, ok, err := rootfsRelPath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("error = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil || rel != tt.rel || ok != tt.inRootfs {
				t.Fatalf("rootfsRelPath(%q) = %q, %v, %v; want %q, %v", tt.in, rel, ok, err, tt.rel, tt.inRootfs)
			}
		})
	}
}

// FuzzRootfsRelPath checks the tar member name parser: whatever the name,
// a path it accepts is relative, clean and cannot climb.
func FuzzRootfsRelPath(f *testing.F) {
	for _, s := range []string{"rootfs/bin/sh", "./rootfs/", "/rootfs//a/./b", "rootfs/../x", "manifest", "rootfs/a/.../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, ok, err := rootfsRelPath(name)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			return
		}
		if !ok {
			return
		}
		if rel == "." {
			return
		}
		if path.IsAbs(rel) || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
			t.Fatalf("rootfsRelPath(%q) = %q, which is not a clean relative path inside the rootfs", name, rel)
		}
	})
}
