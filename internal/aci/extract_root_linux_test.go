package aci

import (
	"archive/tar"
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestExtractRootfsOwnershipAndDevices checks what only root can do:
// ownership, setuid kept across chown, device nodes and trusted xattrs.
func TestExtractRootfsOwnershipAndDevices(t *testing.T) {
	testutil.RequiresRoot(t)
	dest := t.TempDir()
	ents := []ent{
		{name: "rootfs/", typ: tar.TypeDir, mode: 0o755, uid: 0, gid: 0},
		{name: "rootfs/home/", typ: tar.TypeDir, mode: 0o2750, uid: 1000, gid: 1001},
		{name: "rootfs/home/suid", typ: tar.TypeReg, body: "#!", mode: 0o4755, uid: 1234, gid: 5678},
		{name: "rootfs/home/link", typ: tar.TypeSymlink, link: "/nowhere", mode: 0o777, uid: 4321, gid: 8765},
		{name: "rootfs/dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "rootfs/dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "rootfs/dev/loop7", typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 7, gid: 6},
		{name: "rootfs/dev/fifo", typ: tar.TypeFifo, mode: 0o600, uid: 33, gid: 33},
		{name: "rootfs/caps", typ: tar.TypeReg, body: "elf", mode: 0o755, xattrs: map[string]string{
			"trusted.nscn.test": "t",
			"user.nscn.test":    "u",
		}},
		{name: "rootfs/trusted-link", typ: tar.TypeSymlink, link: "caps", xattrs: map[string]string{"trusted.nscn.link": "l"}},
	}
	if err := extractEnts(t, dest, ExtractOptions{PreserveOwnership: true}, ents...); err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}

	tests := []struct {
		name     string
		path     string
		uid, gid uint32
		mode     uint32 // with the type bits
		rdev     uint64
	}{
		{name: "setgid directory", path: "home", uid: 1000, gid: 1001, mode: unix.S_IFDIR | 0o2750},
		{name: "setuid file keeps setuid after chown", path: "home/suid", uid: 1234, gid: 5678, mode: unix.S_IFREG | 0o4755},
		{name: "symlink owner", path: "home/link", uid: 4321, gid: 8765, mode: unix.S_IFLNK | 0o777},
		{name: "char device 1,3", path: "dev/null", mode: unix.S_IFCHR | 0o666, rdev: unix.Mkdev(1, 3)},
		{name: "block device 7,7", path: "dev/loop7", gid: 6, mode: unix.S_IFBLK | 0o660, rdev: unix.Mkdev(7, 7)},
		{name: "fifo owner", path: "dev/fifo", uid: 33, gid: 33, mode: unix.S_IFIFO | 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := lstat(t, filepath.Join(dest, tt.path))
			if st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if st.Mode != tt.mode {
				t.Errorf("mode %o, want %o", st.Mode, tt.mode)
			}
			if st.Rdev != tt.rdev {
				t.Errorf("rdev %d:%d, want %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(tt.rdev), unix.Minor(tt.rdev))
			}
		})
	}

	xattrTests := []struct {
		name, path, attr, want string
	}{
		{name: "trusted xattr on a file", path: "caps", attr: "trusted.nscn.test", want: "t"},
		{name: "user xattr on a file", path: "caps", attr: "user.nscn.test", want: "u"},
		{name: "trusted xattr on a symlink", path: "trusted-link", attr: "trusted.nscn.link", want: "l"},
	}
	for _, tt := range xattrTests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, 64)
			n, err := unix.Lgetxattr(filepath.Join(dest, tt.path), tt.attr, buf)
			if errors.Is(err, unix.ENOTSUP) {
				t.Skip("filesystem without xattrs")
			}
			if err != nil || string(buf[:n]) != tt.want {
				t.Fatalf("%s = %q, %v; want %q", tt.attr, buf[:n], err, tt.want)
			}
		})
	}
}

// Without PreserveOwnership, even root extracts everything as itself and
// drops privileged xattrs.
func TestExtractRootfsWithoutOwnership(t *testing.T) {
	testutil.RequiresRoot(t)
	dest := t.TempDir()
	err := extractEnts(t, dest, ExtractOptions{},
		ent{
			name: "rootfs/f", typ: tar.TypeReg, body: "x", mode: 0o4755, uid: 1234, gid: 5678,
			xattrs: map[string]string{"trusted.nscn.test": "t"},
		})
	if err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}
	if uid, gid := statOwner(t, filepath.Join(dest, "f")); uid != 0 || gid != 0 {
		t.Errorf("owner %d:%d, want 0:0", uid, gid)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dest, "f"), "trusted.nscn.test", nil); !errors.Is(err, unix.ENODATA) {
		t.Errorf("trusted xattr set anyway (%v)", err)
	}
}
