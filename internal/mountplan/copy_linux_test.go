package mountplan

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// entry is what is compared between the source and the copy.
type entry struct {
	mode      uint32
	uid, gid  uint32
	rdev      uint64
	size      int64
	mtime     unix.Timespec
	link      string
	content   string
	xattrs    map[string]string
	linkGroup string // first path sharing the inode, for hard links
}

// snapshot describes every entry under root, by relative path.
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := make(map[string]entry)
	inodes := make(map[uint64]string)
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		e := entry{mode: st.Mode, uid: st.Uid, gid: st.Gid, rdev: st.Rdev, mtime: st.Mtim}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(path) //nolint:gosec // G304: a file the test made
			if err != nil {
				return err
			}
			e.content, e.size = string(b), st.Size
		case unix.S_IFLNK:
			e.link, _ = os.Readlink(path)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				e.linkGroup = first
			} else {
				inodes[st.Ino] = rel
				e.linkGroup = rel
			}
		}
		names, _ := listXattrs(path)
		for _, n := range names {
			v, _ := getXattr(path, n)
			if e.xattrs == nil {
				e.xattrs = make(map[string]string)
			}
			e.xattrs[n] = string(v)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t *testing.T, src, dst string) {
	t.Helper()
	want, got := snapshot(t, src), snapshot(t, dst)
	for rel, w := range want {
		g, ok := got[rel]
		if !ok {
			t.Errorf("%s not copied", rel)
			continue
		}
		if g.mode != w.mode || g.uid != w.uid || g.gid != w.gid || g.rdev != w.rdev ||
			g.content != w.content || g.link != w.link || g.mtime != w.mtime || g.linkGroup != w.linkGroup {
			t.Errorf("%s differs:\n got  %+v\n want %+v", rel, g, w)
		}
		for k, v := range w.xattrs {
			if g.xattrs[k] != v {
				t.Errorf("%s: xattr %s = %q, want %q", rel, k, g.xattrs[k], v)
			}
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s appeared in the copy", rel)
		}
	}
}

// buildTree makes a tree with every kind of entry an unprivileged user
// can make.
func buildTree(t *testing.T, root string) {
	t.Helper()
	mustWrite(t, filepath.Join(root, "bin", "tool"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, "bin", "tool"), 0o4755); err != nil { //nolint:gosec // G302: the test needs a setuid file
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "etc", "a"), "a\n")
	if err := os.Link(filepath.Join(root, "etc", "a"), filepath.Join(root, "etc", "a-hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc", "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../nowhere", filepath.Join(root, "etc", "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close()
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "ro", "inside"), "x")
	if err := os.Chmod(filepath.Join(root, "ro"), 0o555); err != nil { //nolint:gosec // G302: a read-only directory is the case tested
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil { //nolint:gosec // G302: a sticky world-writable tmp is the case tested
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(root, "etc", "a"), "user.nscn", []byte("v"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	then := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	_ = filepath.Walk(root, func(path string, _ os.FileInfo, _ error) error {
		ts := []unix.Timespec{unix.NsecToTimespec(then.UnixNano()), unix.NsecToTimespec(then.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "ro"), 0o755) }) //nolint:gosec // G302: a directory, which needs x to be searched
}

func TestCopyTree(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src)
	dst := filepath.Join(t.TempDir(), "dst")
	if err := CopyTree(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) }) //nolint:gosec // G302: a directory, which needs x to be searched
	compareTrees(t, src, dst)
}

func TestCopyTreeDestinations(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "f"), "f")
	base := t.TempDir()
	file := filepath.Join(base, "file")
	mustWrite(t, file, "")
	full := filepath.Join(base, "full")
	mustWrite(t, filepath.Join(full, "x"), "")
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		src     string
		dst     string
		wantErr error
	}{
		{name: "empty directory is reused", ctx: ctx, src: src, dst: empty},
		{name: "non-empty directory", ctx: ctx, src: src, dst: full, wantErr: errdefs.ErrAlreadyExists},
		{name: "file", ctx: ctx, src: src, dst: file, wantErr: errdefs.ErrAlreadyExists},
		{name: "missing source", ctx: ctx, src: filepath.Join(base, "nope"), dst: filepath.Join(base, "d1"), wantErr: errdefs.ErrNotFound},
		{name: "source is a file", ctx: ctx, src: file, dst: filepath.Join(base, "d2"), wantErr: errdefs.ErrInvalidArgument},
		{name: "canceled", ctx: canceled, src: src, dst: filepath.Join(base, "d3"), wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CopyTree(tt.ctx, tt.src, tt.dst)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("CopyTree = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestCopyTreeAsRoot adds what only root can make: owners, devices and
// trusted xattrs, and a setuid file owned by someone else (chown clears
// the bit, so the order of chown and chmod matters).
func TestCopyTreeAsRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src)
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil { //nolint:gosec // G115: unix.Mknod takes the 64-bit dev_t as an int
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))); err != nil { //nolint:gosec // G115: unix.Mknod takes the 64-bit dev_t as an int
		t.Fatal(err)
	}
	for path, owner := range map[string][2]int{
		"bin/tool":     {1234, 5678},
		"etc":          {1000, 1000},
		"etc/abs-link": {4321, 8765},
		"fifo":         {33, 33},
	} {
		if err := os.Lchown(filepath.Join(src, path), owner[0], owner[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "bin", "tool"), 0o6755); err != nil { //nolint:gosec // G302: the test needs setuid and setgid bits
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(src, "bin", "tool"), "trusted.nscn", []byte("t"), 0); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := CopyTree(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}

// TestApplyCopyModeAsRoot applies the copy plan; nothing is mounted.
func TestApplyCopyModeAsRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	f := newFixture(t)
	plan, err := Build(f.config(Copy))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(context.Background(), plan, Kernel{}); err != nil {
		t.Fatal(err)
	}
	if mps := mountsUnder(t, f.pod); len(mps) != 0 {
		t.Errorf("copy mode mounted %v", mps)
	}
}
