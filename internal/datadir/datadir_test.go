package datadir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// testGID is a group no test machine uses: root may give files to any
// group ID.
const testGID = 4242

func modeAndGroup(t *testing.T, path string) (fs.FileMode, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSticky), int(fi.Sys().(*syscall.Stat_t).Gid)
}

func mkdirMode(t *testing.T, path string, mode fs.FileMode, gid int) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestEnsurePrivate(t *testing.T) {
	tests := []struct {
		name   string
		before fs.FileMode // 0: missing
		want   fs.FileMode
	}{
		{name: "missing", want: 0o700},
		{name: "world-readable, as older nscn made it", before: 0o755, want: 0o700},
		{name: "group-readable", before: 0o750, want: 0o700},
		{name: "already private", before: 0o700, want: 0o700},
		{name: "stricter is kept", before: 0o500, want: 0o500},
		{name: "sticky bit is kept", before: fs.ModeSticky | 0o777, want: fs.ModeSticky | 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "parent", "data")
			if tt.before != 0 {
				if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
					t.Fatal(err)
				}
				mkdirMode(t, dir, tt.before, -1)
			}
			if err := Ensure(dir, Private); err != nil {
				t.Fatal(err)
			}
			if mode, _ := modeAndGroup(t, dir); mode != tt.want {
				t.Fatalf("mode %v, want %v", mode, tt.want)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) }) //nolint:gosec // G302: a directory, which needs x to be searched
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "data")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Ensure(f, Private); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("err = %v, want failed precondition", err)
		}
	})
}

func TestEnsureGroup(t *testing.T) {
	testutil.RequiresRoot(t)
	p := Perms{GID: testGID}
	tests := []struct {
		name      string
		before    fs.FileMode // 0: missing
		beforeGID int
		want      fs.FileMode
	}{
		{name: "missing", want: 0o750},
		{name: "world-readable in group root", before: 0o755, beforeGID: 0, want: 0o750},
		{name: "private in group root is given to the group", before: 0o700, beforeGID: 0, want: 0o750},
		{name: "world-readable in the group", before: 0o775, beforeGID: testGID, want: 0o750},
		{name: "private in the group stays private", before: 0o700, beforeGID: testGID, want: 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tt.before != 0 {
				mkdirMode(t, dir, tt.before, tt.beforeGID)
			}
			if err := Ensure(dir, p); err != nil {
				t.Fatal(err)
			}
			mode, gid := modeAndGroup(t, dir)
			if mode != tt.want || gid != testGID {
				t.Fatalf("mode %v group %d, want %v group %d", mode, gid, tt.want, testGID)
			}
		})
	}
	t.Run("another group is the administrator's choice", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		mkdirMode(t, dir, 0o755, testGID+1)
		if err := Ensure(dir, p); err != nil {
			t.Fatal(err)
		}
		if mode, gid := modeAndGroup(t, dir); mode != 0o750 || gid != testGID+1 {
			t.Fatalf("mode %v group %d, want 0750 group %d", mode, gid, testGID+1)
		}
	})
}

func TestMkdirAllAndInheritGroup(t *testing.T) {
	testutil.RequiresRoot(t)
	root := filepath.Join(t.TempDir(), "data")
	mkdirMode(t, root, 0o750, testGID)
	deep := filepath.Join(root, "cas", "blob", "sha512", "ab")
	if err := MkdirAll(deep, DirMode); err != nil {
		t.Fatal(err)
	}
	for d := deep; d != root; d = filepath.Dir(d) {
		if mode, gid := modeAndGroup(t, d); mode != DirMode || gid != testGID {
			t.Fatalf("%s: mode %v group %d, want %v group %d", d, mode, gid, DirMode, testGID)
		}
	}
	if err := MkdirAll(deep, DirMode); err != nil {
		t.Fatalf("MkdirAll of an existing directory: %v", err)
	}

	file := filepath.Join(deep, "blob")
	if err := os.WriteFile(file, []byte("x"), FileMode); err != nil {
		t.Fatal(err)
	}
	if err := InheritGroup(file); err != nil {
		t.Fatal(err)
	}
	if _, gid := modeAndGroup(t, file); gid != testGID {
		t.Fatalf("InheritGroup: group %d, want %d", gid, testGID)
	}

	tmp := filepath.Join(t.TempDir(), "ingest")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode) //nolint:gosec // G304: a file in the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := SetGroupFrom(f, deep); err != nil {
		t.Fatal(err)
	}
	if _, gid := modeAndGroup(t, tmp); gid != testGID {
		t.Fatalf("SetGroupFrom: group %d, want %d", gid, testGID)
	}
}

func TestMkdirAllUnprivileged(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := MkdirAll(deep, DirMode); err != nil {
		t.Fatal(err)
	}
	_, want := modeAndGroup(t, root)
	for _, d := range []string{filepath.Join(root, "a"), deep} {
		if mode, gid := modeAndGroup(t, d); mode != DirMode&^umask(t) || gid != want {
			t.Fatalf("%s: mode %v group %d, want %v group %d", d, mode, gid, DirMode&^umask(t), want)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(root, "f"), DirMode); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("MkdirAll over a file: %v, want ENOTDIR", err)
	}
}

func umask(t *testing.T) fs.FileMode {
	t.Helper()
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m) //nolint:gosec // G115: a umask fits
}

func TestLookupUnprivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("as root, Lookup depends on the host's groups")
	}
	p, err := Lookup()
	if err != nil || p != Private {
		t.Fatalf("Lookup = %+v, %v; want Private", p, err)
	}
}

func TestCreateNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	f, err := CreateNew(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "x" { //nolint:gosec // G304: a file in the test's own directory
		t.Fatalf("read back %q, %v", b, err)
	}
	if _, err := CreateNew(p); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateNew of an existing file = %v, want it to exist", err)
	}
	// A symlink in its place, even to a missing file, is not followed.
	link := filepath.Join(dir, "l")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateNew(link); err == nil {
		t.Fatal("CreateNew followed a symlink")
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the symlink's target was created: %v", err)
	}
}
