package aci

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// snapshot describes a directory tree, one line per entry sorted by path:
// type, mode, owner, modification time, content digest and size, symlink
// target, device numbers, xattrs, and which earlier entry it is a hardlink
// of. Two trees with equal snapshots are the same to anything that reads
// them (access times aside).
func snapshot(t testing.TB, root string) string {
	t.Helper()
	return snapshotOf(t, root, true)
}

// snapshotIgnoringDirTimes is snapshot without the times of directories:
// those made for entries without a directory entry of their own get the
// time of their creation.
func snapshotIgnoringDirTimes(t testing.TB, root string) string {
	t.Helper()
	return snapshotOf(t, root, false)
}

func snapshotOf(t testing.TB, root string, dirTimes bool) string {
	t.Helper()
	var lines []string
	inodes := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		if dirTimes || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			line += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := inodes[id]; ok {
				line += " hardlink-of=" + first
				break
			}
			inodes[id] = rel
			b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d sha256=%x nlink=%d", st.Size, sha256.Sum256(b), st.Nlink)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		line += xattrList(t, p)
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func xattrList(t testing.TB, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return ""
	}
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var names []string
	for n := range bytes.SplitSeq(buf[:n], []byte{0}) {
		if len(n) > 0 && string(n) != "security.selinux" {
			names = append(names, string(n))
		}
	}
	slices.Sort(names)
	var out strings.Builder
	for _, name := range names {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		fmt.Fprintf(&out, " %s=%q", name, v[:m])
	}
	return out.String()
}

// diffSnapshots reports the first lines where two snapshots differ.
func diffSnapshots(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("-%s\n+%s", x, y))
			if len(out) == 5 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
