package tree

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// TestRenderPreservesOwnership renders as root: owners and setuid bits come
// from the images, and the content hash covers them.
func TestRenderPreservesOwnership(t *testing.T) {
	testutil.RequiresRoot(t)
	src := newFakeSource()
	src.add(t, "example.com/base", nil, nil,
		member{name: "usr/", mode: 0o755},
		member{name: "usr/bin/", mode: 0o755},
		member{name: "usr/bin/su", body: "elf", mode: 0o4755, uid: 0, gid: 0},
		member{name: "home/", mode: 0o755},
		member{name: "home/user/", mode: 0o700, uid: 1000, gid: 1000},
		member{
			name: "home/user/file", body: "x", mode: 0o600, uid: 1000, gid: 1000,
			xattrs: map[string]string{"trusted.nscn.test": "t"},
		})
	top := src.add(t, "example.com/app", depOn("example.com/base"), nil,
		member{name: "app", body: "a", mode: 0o2755, uid: 33, gid: 44})
	s := newTestStore(t, src, WithPreserveOwnership(true))
	tr, err := s.Render(context.Background(), top)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	tests := []struct {
		name     string
		path     string
		uid, gid uint32
		mode     uint32
	}{
		{name: "setuid root binary from the dependency", path: "usr/bin/su", mode: 0o4755},
		{name: "user home", path: "home/user", uid: 1000, gid: 1000, mode: 0o700},
		{name: "user file", path: "home/user/file", uid: 1000, gid: 1000, mode: 0o600},
		{name: "setgid file of the image", path: "app", uid: 33, gid: 44, mode: 0o2755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(tr.Rootfs, tt.path), &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != tt.uid || st.Gid != tt.gid || st.Mode&0o7777 != tt.mode {
				t.Fatalf("%d:%d %o, want %d:%d %o", st.Uid, st.Gid, st.Mode&0o7777, tt.uid, tt.gid, tt.mode)
			}
		})
	}

	t.Run("verify sees an owner change", func(t *testing.T) {
		if err := s.Verify(context.Background(), tr.Key); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if err := os.Lchown(filepath.Join(tr.Rootfs, "app"), 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(context.Background(), tr.Key); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Verify after chown = %v", err)
		}
	})
}
