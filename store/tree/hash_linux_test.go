package tree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// hashFixture builds a tree with every kind of entry the hash covers, in
// dir: directories (empty, deep, with names that sort differently as
// components and as paths), files (empty, large, sparse, setuid), symlinks
// (to a directory, dangling), hardlinks, a fifo, user xattrs, and with
// chown the given owners (root only). xattrs says whether the filesystem
// took the xattrs.
func hashFixture(t testing.TB, dir string, chown bool) (xattrs bool) {
	t.Helper()
	mk := func(rel string, mode os.FileMode) {
		if err := os.MkdirAll(filepath.Join(dir, rel), mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, body string, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("empty", 0o755)
	mk("a", 0o750)
	mk("a-b", 0o755)
	mk("a.b", 0o755)
	mk("a/b", 0o755)
	write("a/b/file", "in a/b\n", 0o644)
	write("a-b/file", "in a-b\n", 0o600)
	write("a.b/file", "in a.b\n", 0o640)
	write("emptyfile", "", 0o644)
	write("large", strings.Repeat("large file content ", 40000), 0o644)
	write("setuid", "elf", 0o4755|os.ModeSetuid)
	must(os.Chmod(filepath.Join(dir, "setuid"), 0o755|os.ModeSetuid|os.ModeSetgid))
	// A sparse file: a hole between two data blocks.
	f, err := os.OpenFile(filepath.Join(dir, "sparse"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: a file the test made
	must(err)
	_, err = f.WriteAt([]byte("head"), 0)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 1<<20)
	must(err)
	must(f.Close())
	deep := "deep"
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	mk(deep, 0o755)
	write(filepath.Join(deep, "leaf"), "leaf", 0o644)
	// Many files in many directories: more than one batch of records.
	for d := range 30 {
		mk(fmt.Sprintf("many/dir%02d", d), 0o755)
		for i := range 40 {
			write(fmt.Sprintf("many/dir%02d/f%03d", d, i), fmt.Sprintf("file %d of %d", i, d), 0o644)
		}
	}
	must(os.Symlink("a/b", filepath.Join(dir, "link-to-dir")))
	must(os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "a/b/file"), filepath.Join(dir, "hardlink")))
	must(os.Link(filepath.Join(dir, "a/b/file"), filepath.Join(dir, "many/dir07/hardlink")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	err = unix.Lsetxattr(filepath.Join(dir, "a.b/file"), "user.nscn.test", []byte("value"), 0)
	if err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	if err == nil {
		must(unix.Lsetxattr(filepath.Join(dir, "a"), "user.nscn.dir", []byte("d"), 0))
	}
	if chown {
		must(os.Lchown(filepath.Join(dir, "a"), 1000, 1001))
		must(os.Lchown(filepath.Join(dir, "a.b/file"), 33, 44))
		must(os.Lchown(filepath.Join(dir, "dangling"), 7, 8))
		// chown clears setuid; set it again.
		must(os.Lchown(filepath.Join(dir, "setuid"), 0, 5))
		must(os.Chmod(filepath.Join(dir, "setuid"), 0o755|os.ModeSetuid|os.ModeSetgid))
	}
	return err == nil
}

// TestHashRootfsMatchesReference: the walk gives, on every tree, the hash
// the serial reference walk gives, for both algorithms: trees rendered
// before keep verifying.
func TestHashRootfsMatchesReference(t *testing.T) {
	tests := []struct {
		name  string
		build func(t testing.TB, dir string)
	}{
		{name: "empty rootfs", build: func(testing.TB, string) {}},
		{name: "one file", build: func(t testing.TB, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "every kind of entry", build: func(t testing.TB, dir string) { hashFixture(t, dir, false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.build(t, dir)
			for _, algo := range []string{"blake3", "sha256", "sha512"} {
				want, err := referenceHash(context.Background(), dir, algo)
				if err != nil {
					t.Fatal(err)
				}
				got, err := hashRootfs(context.Background(), dir, algo, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s: hashRootfs = %s, reference %s", algo, got, want)
				}
			}
		})
	}
}

// TestHashRootfsGolden pins the hash of a fixed tree (owners included,
// hence root): a change of the record format would make every tree
// rendered before fail to verify.
func TestHashRootfsGolden(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	xattrs := hashFixture(t, dir, true)
	var out strings.Builder
	for _, algo := range []string{"blake3", "sha256", "sha512"} {
		ref, err := referenceHash(context.Background(), dir, algo)
		if err != nil {
			t.Fatal(err)
		}
		got, err := hashRootfs(context.Background(), dir, algo, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != ref {
			t.Errorf("%s: hashRootfs = %s, reference %s", algo, got, ref)
		}
		out.WriteString(got + "\n")
	}
	if !xattrs {
		t.Skip("the filesystem of the test directory has no user xattrs: the golden hash covers them")
	}
	testutil.Golden(t, "hash-fixture.golden", []byte(out.String()))
}

// TestHashRootfsSeesChanges: each kind of change to a tree changes its
// hash.
func TestHashRootfsSeesChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(dir string) error
	}{
		{name: "content", change: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "many/dir03/f005"), []byte("changed!"), 0o644)
		}},
		{name: "mode", change: func(dir string) error { return os.Chmod(filepath.Join(dir, "a.b/file"), 0o644) }},
		{name: "symlink target", change: func(dir string) error {
			if err := os.Remove(filepath.Join(dir, "dangling")); err != nil {
				return err
			}
			return os.Symlink("/nowhere/at/al1", filepath.Join(dir, "dangling"))
		}},
		{name: "new empty file deep down", change: func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "many/dir29/zzz"), nil, 0o644)
		}},
		{name: "removed directory", change: func(dir string) error { return os.Remove(filepath.Join(dir, "empty")) }},
		{name: "hardlink becomes a copy", change: func(dir string) error {
			p := filepath.Join(dir, "hardlink")
			b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
			if err != nil {
				return err
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, append(b, '!'), 0o644) //nolint:gosec // G703: a file the test made
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			hashFixture(t, dir, false)
			before, err := hashRootfs(context.Background(), dir, contentAlgo, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.change(dir); err != nil {
				t.Fatal(err)
			}
			after, err := hashRootfs(context.Background(), dir, contentAlgo, nil)
			if err != nil {
				t.Fatal(err)
			}
			if after == before {
				t.Error("hash unchanged")
			}
			if ref, _ := referenceHash(context.Background(), dir, contentAlgo); ref != after {
				t.Errorf("hash %s, reference %s", after, ref)
			}
		})
	}
}

// TestHashRootfsCancel: a cancelled context stops the walk with its error.
func TestHashRootfsCancel(t *testing.T) {
	dir := t.TempDir()
	hashFixture(t, dir, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := hashRootfs(ctx, dir, contentAlgo, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("hashRootfs = %v, want context.Canceled", err)
	}
}

// TestHashRootfsMissing: a rootfs that is not there is an error, not a
// hash.
func TestHashRootfsMissing(t *testing.T) {
	if h, err := hashRootfs(context.Background(), filepath.Join(t.TempDir(), "nope"), contentAlgo, nil); err == nil {
		t.Fatalf("hashRootfs of a missing directory = %s", h)
	}
}

// records returns what extraction would have recorded of every regular
// file under dir: its metadata from its descriptor and the digest of its
// content.
func records(t *testing.T, dir, algo string) *contentHasher {
	t.Helper()
	newHash, err := hashFunc(algo)
	if err != nil {
		t.Fatal(err)
	}
	known := newContentHasher(newHash)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p) //nolint:gosec // G304: a file the test made
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		h := newHash()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		id, rec, err := fdRecord(int(f.Fd()))
		if err != nil {
			return err
		}
		rec.digest = h.Sum(nil)
		known.records[id] = rec
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	known.end()
	return known
}

// TestHashRootfsRecords: with the records of extraction, the walk gives
// the reference hash, takes what it records of a regular file from its
// record where directory listings give inode numbers (a record that lies
// shows in the hash), and reads xattrs from the tree, also those added
// after the record was taken (as IMA adds security.ima when extraction
// closes the file), with or without listxattrat.
func TestHashRootfsRecords(t *testing.T) {
	for _, xattrat := range []bool{true, false} {
		t.Run(fmt.Sprintf("listxattrat=%v", xattrat), func(t *testing.T) {
			if !xattrat {
				old := listxattrat
				listxattrat = func(int, string) (int, error) { return 0, unix.ENOSYS }
				t.Cleanup(func() { listxattrat = old })
			}
			dir := t.TempDir()
			xattrs := hashFixture(t, dir, false)
			known := records(t, dir, contentAlgo)
			if xattrs {
				// After the records were taken, as on the kernel's close.
				if err := unix.Lsetxattr(filepath.Join(dir, "many/dir03/f007"), "user.added.later", []byte("1"), 0); err != nil {
					t.Fatal(err)
				}
			}
			want, err := referenceHash(context.Background(), dir, contentAlgo)
			if err != nil {
				t.Fatal(err)
			}
			got, err := hashRootfs(context.Background(), dir, contentAlgo, known)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("hashRootfs with records = %s, reference %s", got, want)
			}

			// A record that lies about the mode of a file.
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, "many/dir05/f010"), &st); err != nil {
				t.Fatal(err)
			}
			id := [2]uint64{st.Dev, st.Ino}
			r := known.records[id]
			r.perm ^= 0o100
			known.records[id] = r
			lied, err := hashRootfs(context.Background(), dir, contentAlgo, known)
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			byIno := direntInos(fd)
			_ = unix.Close(fd)
			if byIno && lied == want {
				t.Error("the walk did not take the file's mode from its record")
			}
			if !byIno && lied != want {
				t.Error("the walk took the file's mode from its record on a filesystem whose listings do not identify files")
			}
		})
	}
}

// TestHashRootfsListers: however many listers the walk may start (one per
// processor), the hash is the reference's, with and without records.
func TestHashRootfsListers(t *testing.T) {
	dir := t.TempDir()
	hashFixture(t, dir, false)
	known := records(t, dir, contentAlgo)
	want, err := referenceHash(context.Background(), dir, contentAlgo)
	if err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for _, k := range []*contentHasher{nil, known} {
				got, err := hashRootfs(context.Background(), dir, contentAlgo, k)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("records %v: hashRootfs = %s, reference %s", k != nil, got, want)
				}
			}
		})
	}
}
