package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// escapeFixture is a temporary directory holding the extraction target
// "dest" and, beside it, a "sentinel" directory with one file that no
// extraction may touch.
type escapeFixture struct {
	base, dest, sentinel string
}

const sentinelContent = "host data, keep out"

func newEscapeFixture(t testing.TB) escapeFixture {
	t.Helper()
	base := t.TempDir()
	fx := escapeFixture{base: base, dest: filepath.Join(base, "dest"), sentinel: filepath.Join(base, "sentinel")}
	for _, d := range []string{fx.dest, fx.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(fx.sentinel, "secret"), []byte(sentinelContent), 0o644); err != nil {
		t.Fatal(err)
	}
	return fx
}

// reset empties dest.
func (fx escapeFixture) reset(t testing.TB) {
	t.Helper()
	makeWritable(fx.dest)
	if err := os.RemoveAll(fx.dest); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(fx.dest, 0o755); err != nil {
		t.Fatal(err)
	}
}

// check fails the test when anything outside dest changed: base must hold
// only dest and sentinel, and sentinel only its untouched, unlinked secret.
func (fx escapeFixture) check(t testing.TB) {
	t.Helper()
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names(fx.base); !slices.Equal(got, []string{"dest", "sentinel"}) {
		t.Fatalf("entries created beside dest: %v", got)
	}
	if got := names(fx.sentinel); !slices.Equal(got, []string{"secret"}) {
		t.Fatalf("entries created in the sentinel directory: %v", got)
	}
	secret := filepath.Join(fx.sentinel, "secret")
	b, err := os.ReadFile(secret) //nolint:gosec // G304: a file the test made
	if err != nil || string(b) != sentinelContent {
		t.Fatalf("sentinel file changed: %q, %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(secret, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("sentinel file got %d links, mode %o", st.Nlink, st.Mode)
	}
	if st.Mode&0o7777 != 0o644 {
		t.Fatalf("sentinel file mode changed to %o", st.Mode&0o7777)
	}
}

func extractEnts(t testing.TB, dest string, opts ExtractOptions, ents ...ent) error {
	t.Helper()
	return ExtractRootfs(context.Background(), bytes.NewReader(buildTar(t, ents...)), dest, opts)
}

func fifoEnt(name string) ent { return ent{name: name, typ: tar.TypeFifo, mode: 0o644} }

func TestExtractRootfsEscapes(t *testing.T) {
	passwdBefore := linkCount(t, "/etc/passwd")
	tests := []struct {
		name    string
		ents    func(fx escapeFixture) []ent
		wantErr bool
		// inside, when set, is a path under dest (in-root) that must exist
		// afterwards: where the hostile entry was confined to.
		inside func(fx escapeFixture) string
	}{
		{
			name:    "dot-dot name",
			ents:    func(escapeFixture) []ent { return []ent{fileEnt("../x", "pwned")} },
			wantErr: true,
		},
		{
			name:    "dot-dot through rootfs",
			ents:    func(escapeFixture) []ent { return []ent{fileEnt("rootfs/../../x", "pwned")} },
			wantErr: true,
		},
		{
			name: "dot-dot deep to the sentinel",
			ents: func(escapeFixture) []ent {
				return []ent{dirEnt("rootfs/a/", 0o755), fileEnt("rootfs/a/../../../sentinel/secret", "pwned")}
			},
			wantErr: true,
		},
		{
			name: "absolute name outside rootfs is skipped",
			ents: func(fx escapeFixture) []ent {
				return []ent{fileEnt(filepath.Join(fx.sentinel, "secret"), "pwned"), fileEnt(filepath.Join(fx.sentinel, "new"), "pwned")}
			},
		},
		{
			name:   "absolute rootfs name stays inside",
			ents:   func(escapeFixture) []ent { return []ent{fileEnt("/rootfs/abs", "ok")} },
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "abs") },
		},
		{
			name: "symlink then write through it",
			ents: func(fx escapeFixture) []ent {
				// The sentinel's path also exists in root, so the write has
				// somewhere to go: inside.
				return []ent{
					dirEnt("rootfs"+fx.sentinel+"/", 0o755),
					symlinkEnt("rootfs/evil", fx.sentinel), fileEnt("rootfs/evil/secret", "pwned"),
				}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, fx.sentinel, "secret") },
		},
		{
			name: "symlink to /etc then write passwd",
			ents: func(escapeFixture) []ent {
				return []ent{dirEnt("rootfs/etc/", 0o755), symlinkEnt("rootfs/evil", "/etc"), fileEnt("rootfs/evil/passwd", "root::0:0::/:/bin/sh")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "etc", "passwd") },
		},
		{
			name: "write through a symlink dangling in root",
			ents: func(fx escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/evil", fx.sentinel), fileEnt("rootfs/evil/secret", "pwned")}
			},
			wantErr: true,
		},
		{
			name: "relative symlink climbing out then write",
			ents: func(escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/up", "../../../../../../../.."), fileEnt("rootfs/up/sentinel/secret", "pwned")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "sentinel", "secret") },
		},
		{
			name: "symlink chain then write",
			ents: func(fx escapeFixture) []ent {
				return []ent{
					dirEnt("rootfs"+fx.sentinel+"/", 0o755),
					symlinkEnt("rootfs/a", "b"), symlinkEnt("rootfs/b", fx.sentinel), fileEnt("rootfs/a/new", "pwned"),
				}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, fx.sentinel, "new") },
		},
		{
			name: "symlink to root then directory through it",
			ents: func(escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/root", "/"), dirEnt("rootfs/root/etc/", 0o755), fileEnt("rootfs/root/etc/x", "in")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "etc", "x") },
		},
		{
			name: "fifo through a symlink",
			ents: func(fx escapeFixture) []ent {
				return []ent{dirEnt("rootfs"+fx.sentinel+"/", 0o755), symlinkEnt("rootfs/evil", fx.sentinel), fifoEnt("rootfs/evil/fifo")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, fx.sentinel, "fifo") },
		},
		{
			name: "file replaces a symlink to a host file",
			ents: func(fx escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/f", filepath.Join(fx.sentinel, "secret")), fileEnt("rootfs/f", "new")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "f") },
		},
		{
			name: "directory replaces a symlink to a host directory",
			ents: func(fx escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/d", fx.sentinel), dirEnt("rootfs/d/", 0o700), fileEnt("rootfs/d/secret", "pwned")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "d", "secret") },
		},
		{
			name:    "hardlink to /etc/passwd",
			ents:    func(escapeFixture) []ent { return []ent{hardlinkEnt("rootfs/passwd", "/etc/passwd")} },
			wantErr: true,
		},
		{
			name: "hardlink to the sentinel by absolute path",
			ents: func(fx escapeFixture) []ent {
				return []ent{hardlinkEnt("rootfs/h", filepath.Join(fx.sentinel, "secret"))}
			},
			wantErr: true,
		},
		{
			name: "hardlink through a planted symlink",
			ents: func(fx escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/lnk", fx.sentinel), hardlinkEnt("rootfs/h", "rootfs/lnk/secret")}
			},
			wantErr: true,
		},
		{
			name: "hardlink through a planted symlink to a name extracted in root",
			ents: func(fx escapeFixture) []ent {
				return []ent{
					dirEnt("rootfs"+fx.sentinel+"/", 0o755), fileEnt("rootfs"+fx.sentinel+"/secret", "mine"),
					symlinkEnt("rootfs/lnk", fx.sentinel), hardlinkEnt("rootfs/h", "rootfs/lnk/secret"),
				}
			},
			wantErr: true, // not an earlier entry name, even though it resolves in root
		},
		{
			name: "symlink loop as a parent",
			ents: func(escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/a", "b"), symlinkEnt("rootfs/b", "a"), fileEnt("rootfs/a/x", "x")}
			},
			wantErr: true,
		},
		{
			name: "hardlink to an entry since replaced by a symlink directory",
			ents: func(fx escapeFixture) []ent {
				return []ent{
					dirEnt("rootfs/d/", 0o755), fileEnt("rootfs/d/secret", "mine"),
					symlinkEnt("rootfs/d", fx.sentinel), hardlinkEnt("rootfs/h", "rootfs/d/secret"),
				}
			},
			wantErr: true,
		},
		{
			name: "hardlink with dot-dot",
			ents: func(escapeFixture) []ent {
				return []ent{hardlinkEnt("rootfs/h", "rootfs/../../sentinel/secret")}
			},
			wantErr: true,
		},
		{
			name: "hardlink to a symlink links the symlink itself",
			ents: func(fx escapeFixture) []ent {
				return []ent{symlinkEnt("rootfs/s", filepath.Join(fx.sentinel, "secret")), hardlinkEnt("rootfs/h", "rootfs/s"), fileEnt("rootfs/h", "replaced")}
			},
			inside: func(fx escapeFixture) string { return filepath.Join(fx.dest, "h") },
		},
	}
	resolvers := []struct {
		name      string
		noOpenat2 bool
	}{{name: "openat2", noOpenat2: false}, {name: "securejoin", noOpenat2: true}}
	for _, res := range resolvers {
		for _, tt := range tests {
			t.Run(res.name+"/"+tt.name, func(t *testing.T) {
				fx := newEscapeFixture(t)
				tb := buildTar(t, tt.ents(fx)...)
				err := extract(context.Background(), bytes.NewReader(tb), fx.dest, ExtractOptions{}, tuning{noOpenat2: res.noOpenat2})
				if tt.wantErr {
					if err == nil {
						t.Fatal("hostile archive extracted without error")
					}
					if !errors.Is(err, errdefs.ErrInvalidArgument) {
						t.Errorf("error %v is not InvalidArgument", err)
					}
				} else if err != nil {
					t.Fatalf("ExtractRootfs: %v", err)
				}
				fx.check(t)
				if tt.inside != nil {
					if _, err := os.Lstat(tt.inside(fx)); err != nil {
						t.Errorf("entry not confined where expected: %v", err)
					}
				}
			})
		}
	}
	if got := linkCount(t, "/etc/passwd"); got != passwdBefore {
		t.Fatalf("/etc/passwd link count went from %d to %d", passwdBefore, got)
	}
}

func linkCount(t testing.TB, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Nlink) //nolint:unconvert // Stat_t.Nlink is uint32 on 386 and arm
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (or %v)", p, err)
	}
}

// TestExtractRootfsLayers extracts several archives into one directory and
// checks the overwrite rules used when rendering dependencies.
func TestExtractRootfsLayers(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]ent
		check  func(t *testing.T, dest string)
	}{
		{
			name:   "file replaces file",
			layers: [][]ent{{fileEnt("rootfs/a", "lower")}, {fileEnt("rootfs/a", "upper")}},
			check: func(t *testing.T, dest string) {
				if got := readFile(t, filepath.Join(dest, "a")); got != "upper" {
					t.Fatalf("a = %q", got)
				}
			},
		},
		{
			name: "file replacing one name of a hardlink leaves the other",
			layers: [][]ent{
				{fileEnt("rootfs/a", "lower"), hardlinkEnt("rootfs/b", "rootfs/a")},
				{fileEnt("rootfs/a", "upper")},
			},
			check: func(t *testing.T, dest string) {
				if a, b := readFile(t, filepath.Join(dest, "a")), readFile(t, filepath.Join(dest, "b")); a != "upper" || b != "lower" {
					t.Fatalf("a = %q, b = %q", a, b)
				}
			},
		},
		{
			name: "directory over directory updates metadata and keeps contents",
			layers: [][]ent{
				{dirEnt("rootfs/d/", 0o755), fileEnt("rootfs/d/lower", "x")},
				{dirEnt("rootfs/d/", 0o710), fileEnt("rootfs/d/upper", "y")},
			},
			check: func(t *testing.T, dest string) {
				if st := lstat(t, filepath.Join(dest, "d")); st.Mode&0o7777 != 0o710 {
					t.Fatalf("d mode %o", st.Mode&0o7777)
				}
				lstat(t, filepath.Join(dest, "d", "lower"))
				lstat(t, filepath.Join(dest, "d", "upper"))
			},
		},
		{
			name: "symlink to a directory is replaced by a directory, not followed",
			layers: [][]ent{
				{dirEnt("rootfs/real/", 0o755), fileEnt("rootfs/real/keep", "k"), symlinkEnt("rootfs/lib", "real")},
				{dirEnt("rootfs/lib/", 0o755), fileEnt("rootfs/lib/new", "n")},
			},
			check: func(t *testing.T, dest string) {
				if st := lstat(t, filepath.Join(dest, "lib")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Fatalf("lib is not a directory: mode %o", st.Mode)
				}
				lstat(t, filepath.Join(dest, "lib", "new"))
				lstat(t, filepath.Join(dest, "real", "keep"))
				mustNotExist(t, filepath.Join(dest, "real", "new"))
			},
		},
		{
			name: "symlink to a directory is replaced by a file",
			layers: [][]ent{
				{dirEnt("rootfs/real/", 0o755), fileEnt("rootfs/real/keep", "k"), symlinkEnt("rootfs/lib", "real")},
				{fileEnt("rootfs/lib", "file")},
			},
			check: func(t *testing.T, dest string) {
				if got := readFile(t, filepath.Join(dest, "lib")); got != "file" {
					t.Fatalf("lib = %q", got)
				}
				lstat(t, filepath.Join(dest, "real", "keep"))
			},
		},
		{
			name: "non-directory over a directory removes the tree",
			layers: [][]ent{
				{dirEnt("rootfs/d/", 0o755), dirEnt("rootfs/d/sub/", 0o555), fileEnt("rootfs/d/sub/x", "x")},
				{symlinkEnt("rootfs/d", "/elsewhere")},
			},
			check: func(t *testing.T, dest string) {
				if target, err := os.Readlink(filepath.Join(dest, "d")); err != nil || target != "/elsewhere" {
					t.Fatalf("d -> %q, %v", target, err)
				}
			},
		},
		{
			name: "directory over a file replaces it",
			layers: [][]ent{
				{fileEnt("rootfs/d", "file")},
				{dirEnt("rootfs/d/", 0o755), fileEnt("rootfs/d/x", "x")},
			},
			check: func(t *testing.T, dest string) {
				if got := readFile(t, filepath.Join(dest, "d", "x")); got != "x" {
					t.Fatalf("d/x = %q", got)
				}
			},
		},
		{
			name: "fifo replaces a file",
			layers: [][]ent{
				{fileEnt("rootfs/p", "file")},
				{fifoEnt("rootfs/p")},
			},
			check: func(t *testing.T, dest string) {
				if st := lstat(t, filepath.Join(dest, "p")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
					t.Fatalf("p mode %o", st.Mode)
				}
			},
		},
		{
			name: "an upper entry without its directory entry goes through a lower symlink in root",
			layers: [][]ent{
				{dirEnt("rootfs/usr/", 0o755), dirEnt("rootfs/usr/lib/", 0o755), symlinkEnt("rootfs/lib", "/usr/lib")},
				{fileEnt("rootfs/lib/libx.so", "elf")},
			},
			check: func(t *testing.T, dest string) {
				if got := readFile(t, filepath.Join(dest, "usr", "lib", "libx.so")); got != "elf" {
					t.Fatalf("usr/lib/libx.so = %q", got)
				}
			},
		},
		{
			name: "duplicate entries in one archive: the last wins",
			layers: [][]ent{
				{fileEnt("rootfs/a", "first"), symlinkEnt("rootfs/a", "x"), fileEnt("rootfs/a", "last")},
			},
			check: func(t *testing.T, dest string) {
				if got := readFile(t, filepath.Join(dest, "a")); got != "last" {
					t.Fatalf("a = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			for i, l := range tt.layers {
				if err := extractEnts(t, dest, ExtractOptions{}, l...); err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
			}
			tt.check(t, dest)
		})
	}
}

func TestExtractRootfsMetadata(t *testing.T) {
	dest := t.TempDir()
	fileTime := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	linkTime := time.Date(2002, 2, 3, 4, 5, 6, 0, time.UTC)
	dirTime := time.Date(2003, 2, 3, 4, 5, 6, 0, time.UTC)
	sparse := string(make([]byte, 1<<20)) + "end"
	ents := []ent{
		{name: "rootfs/", typ: tar.TypeDir, mode: 0o751, mtime: dirTime},
		{name: "rootfs/ro/", typ: tar.TypeDir, mode: 0o555, mtime: dirTime},
		{name: "rootfs/ro/inside", typ: tar.TypeReg, body: "x", mode: 0o600, mtime: fileTime},
		{name: "rootfs/tmp/", typ: tar.TypeDir, mode: 0o1777, mtime: dirTime},
		{name: "rootfs/suid", typ: tar.TypeReg, body: "#!", mode: 0o4755, mtime: fileTime},
		{name: "rootfs/sgid", typ: tar.TypeReg, body: "#!", mode: 0o2711, mtime: fileTime},
		{name: "rootfs/link", typ: tar.TypeSymlink, link: "suid", mode: 0o777, mtime: linkTime},
		{name: "rootfs/hard", typ: tar.TypeLink, link: "rootfs/suid"},
		{name: "rootfs/fifo", typ: tar.TypeFifo, mode: 0o620, mtime: fileTime},
		{name: "rootfs/sparse", typ: tar.TypeReg, body: sparse, mode: 0o644, mtime: fileTime},
		{name: "rootfs/empty", typ: tar.TypeReg, mode: 0o400, mtime: fileTime},
		{name: "rootfs/xattr", typ: tar.TypeReg, body: "x", mode: 0o644, mtime: fileTime, xattrs: map[string]string{"user.nscn.test": "value"}},
	}
	// Let TempDir's cleanup, registered earlier and so run later, into the
	// read-only directory when not root.
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dest, "ro"), 0o755) }) //nolint:gosec // G302: a directory, which needs x to be searched
	if err := extractEnts(t, dest, ExtractOptions{}, ents...); err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}

	tests := []struct {
		name     string
		path     string
		wantType uint32
		wantMode uint32
		wantTime time.Time
	}{
		{name: "rootfs directory applies to dest", path: ".", wantType: unix.S_IFDIR, wantMode: 0o751, wantTime: dirTime},
		{name: "read-only directory filled then sealed", path: "ro", wantType: unix.S_IFDIR, wantMode: 0o555, wantTime: dirTime},
		{name: "file inside read-only directory", path: "ro/inside", wantType: unix.S_IFREG, wantMode: 0o600, wantTime: fileTime},
		{name: "sticky directory", path: "tmp", wantType: unix.S_IFDIR, wantMode: 0o1777, wantTime: dirTime},
		{name: "setuid file", path: "suid", wantType: unix.S_IFREG, wantMode: 0o4755, wantTime: fileTime},
		{name: "setgid file", path: "sgid", wantType: unix.S_IFREG, wantMode: 0o2711, wantTime: fileTime},
		{name: "symlink keeps its own time", path: "link", wantType: unix.S_IFLNK, wantMode: 0o777, wantTime: linkTime},
		{name: "fifo", path: "fifo", wantType: unix.S_IFIFO, wantMode: 0o620, wantTime: fileTime},
		{name: "empty file", path: "empty", wantType: unix.S_IFREG, wantMode: 0o400, wantTime: fileTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := lstat(t, filepath.Join(dest, tt.path))
			if st.Mode&unix.S_IFMT != tt.wantType {
				t.Errorf("type %o, want %o", st.Mode&unix.S_IFMT, tt.wantType)
			}
			if st.Mode&0o7777 != tt.wantMode {
				t.Errorf("mode %o, want %o", st.Mode&0o7777, tt.wantMode)
			}
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(tt.wantTime) {
				t.Errorf("mtime %v, want %v", got, tt.wantTime)
			}
		})
	}

	t.Run("hardlink shares the inode", func(t *testing.T) {
		a, b := lstat(t, filepath.Join(dest, "suid")), lstat(t, filepath.Join(dest, "hard"))
		if a.Ino != b.Ino || a.Nlink != 2 {
			t.Fatalf("inodes %d and %d, %d links", a.Ino, b.Ino, a.Nlink)
		}
	})
	t.Run("sparse file has holes and the right content", func(t *testing.T) {
		p := filepath.Join(dest, "sparse")
		if got := readFile(t, p); got != sparse {
			t.Fatalf("content differs (%d bytes)", len(got))
		}
		if st := lstat(t, p); st.Blocks*512 >= 1<<20 {
			t.Errorf("%d bytes allocated for a file of zeros", st.Blocks*512)
		}
	})
	t.Run("user xattr", func(t *testing.T) {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dest, "xattr"), "user.nscn.test", buf)
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("filesystem without user xattrs")
		}
		if err != nil || string(buf[:n]) != "value" {
			t.Fatalf("xattr = %q, %v", buf[:n], err)
		}
	})
}

func TestExtractRootfsFilter(t *testing.T) {
	dest := t.TempDir()
	keep := map[string]bool{"/etc": true, "/etc/keep": true, "/bin/sh": true, "/bin/ln": true}
	var asked []string
	opts := ExtractOptions{Filter: func(p string) bool {
		asked = append(asked, p)
		return keep[p]
	}}
	err := extractEnts(t, dest, opts,
		dirEnt("./rootfs/", 0o755),
		dirEnt("./rootfs/etc/", 0o700),
		fileEnt("./rootfs//etc/keep", "k"),
		fileEnt("rootfs/etc/drop", "d"),
		dirEnt("rootfs/bin/", 0o700),
		fileEnt("rootfs/bin/sh", "sh"),
		hardlinkEnt("rootfs/bin/ln", "rootfs/bin/sh"),
		fileEnt("manifest", testManifest),
	)
	if err != nil {
		t.Fatalf("ExtractRootfs: %v", err)
	}
	want := []string{"/etc", "/etc/keep", "/etc/drop", "/bin", "/bin/sh", "/bin/ln"}
	if !slices.Equal(asked, want) {
		t.Errorf("filter asked %v, want %v", asked, want)
	}
	if st := lstat(t, filepath.Join(dest, "etc")); st.Mode&0o7777 != 0o700 {
		t.Errorf("kept directory etc has mode %o", st.Mode&0o7777)
	}
	umask := unix.Umask(0)
	unix.Umask(umask)
	if st := lstat(t, filepath.Join(dest, "bin")); st.Mode&0o7777 != 0o755&^uint32(umask) { //nolint:gosec // G115: a umask fits
		t.Errorf("implicit parent bin has mode %o", st.Mode&0o7777)
	}
	lstat(t, filepath.Join(dest, "etc", "keep"))
	lstat(t, filepath.Join(dest, "bin", "ln"))
	mustNotExist(t, filepath.Join(dest, "etc", "drop"))
	mustNotExist(t, filepath.Join(dest, "manifest"))

	t.Run("hardlink to a filtered-out target", func(t *testing.T) {
		err := extractEnts(t, t.TempDir(), ExtractOptions{Filter: func(p string) bool { return p != "/a" }},
			fileEnt("rootfs/a", "a"), hardlinkEnt("rootfs/b", "rootfs/a"))
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "filtered out") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestExtractRootfsRejects(t *testing.T) {
	tests := []struct {
		name string
		opts ExtractOptions
		ents []ent
		want error
	}{
		{name: "unknown entry type", ents: []ent{{name: "rootfs/x", typ: 'Z', mode: 0o644}}, want: errdefs.ErrInvalidArgument},
		{name: "symlink without a target", ents: []ent{{name: "rootfs/l", typ: tar.TypeSymlink}}, want: errdefs.ErrInvalidArgument},
		{name: "rootfs is a file", ents: []ent{fileEnt("rootfs", "x")}, want: errdefs.ErrInvalidArgument},
		{name: "hardlink to a later entry", ents: []ent{hardlinkEnt("rootfs/b", "rootfs/a"), fileEnt("rootfs/a", "a")}, want: errdefs.ErrInvalidArgument},
		{name: "hardlink to the rootfs", ents: []ent{hardlinkEnt("rootfs/b", "rootfs")}, want: errdefs.ErrInvalidArgument},
		{name: "hardlink to a directory", ents: []ent{dirEnt("rootfs/d/", 0o755), hardlinkEnt("rootfs/b", "rootfs/d")}, want: errdefs.ErrInvalidArgument},
		{name: "uid out of range", opts: ExtractOptions{PreserveOwnership: true}, ents: []ent{{name: "rootfs/x", typ: tar.TypeReg, uid: 1 << 32}}, want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := extractEnts(t, t.TempDir(), tt.opts, tt.ents...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "rootfs") {
				t.Errorf("error %q does not name the entry", err)
			}
		})
	}
}

func TestExtractRootfsMissingDest(t *testing.T) {
	err := extractEnts(t, filepath.Join(t.TempDir(), "nope"), ExtractOptions{}, fileEnt("rootfs/a", "a"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("error = %v, want NotFound", err)
	}
}

func TestExtractRootfsTruncated(t *testing.T) {
	b := buildTar(t, fileEnt("rootfs/a", strings.Repeat("a", 5000)))
	err := ExtractRootfs(context.Background(), bytes.NewReader(b[:2048]), t.TempDir(), ExtractOptions{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("error = %v, want InvalidArgument", err)
	}
}

func TestExtractRootfsCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ExtractRootfs(ctx, bytes.NewReader(buildTar(t, fileEnt("rootfs/a", "a"))), t.TempDir(), ExtractOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

// statOwner returns the owner of p without following it.
func statOwner(t testing.TB, p string) (uid, gid uint32) {
	t.Helper()
	st := lstat(t, p)
	return st.Uid, st.Gid
}

// TestExtractRootfsContent: Content gets every regular file once, open,
// with its whole content and its digest, and hardlinks, symlinks and
// directories not at all; serially and with workers alike.
func TestExtractRootfsContent(t *testing.T) {
	sparse := "x" + strings.Repeat("\x00", 3*holeBlock) + "y"
	large := strings.Repeat("0123456789abcdef", copyBufSize/16) + "tail"
	tb := buildTar(t,
		dirEnt("rootfs/bin", 0o755),
		fileEnt("rootfs/bin/sh", "#!shell\n"),
		fileEnt("rootfs/sparse", sparse),
		fileEnt("rootfs/large", large),
		fileEnt("rootfs/empty", ""),
		hardlinkEnt("rootfs/bin/sh2", "rootfs/bin/sh"),
		symlinkEnt("rootfs/link", "bin/sh"),
	)
	want := map[string]string{"bin/sh": "#!shell\n", "sparse": sparse, "large": large, "empty": ""}
	for _, tt := range []struct {
		name string
		tune tuning
	}{{name: "workers"}, {name: "serial", tune: tuning{serial: true}}} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string]string{}
			digests := map[string][]byte{}
			opts := ExtractOptions{Hash: sha256.New, Content: func(f WrittenFile) {
				// Not os.NewFile: its finalizer would close the
				// descriptor again, after extraction has.
				b := make([]byte, 1<<20)
				n, err := unix.Pread(f.Fd, b, 0)
				b = b[:max(n, 0)]
				if err != nil {
					t.Errorf("read %s: %v", f.Path, err)
				}
				mu.Lock()
				defer mu.Unlock()
				if _, dup := got[f.Path]; dup {
					t.Errorf("%s given twice", f.Path)
				}
				got[f.Path], digests[f.Path] = string(b), f.Digest
			}}
			if err := extract(context.Background(), bytes.NewReader(tb), t.TempDir(), opts, tt.tune); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("Content got %d files, want %d: %v", len(got), len(want), slices.Collect(maps.Keys(got)))
			}
			for name, body := range want {
				if got[name] != body {
					t.Errorf("Content of %s: %d bytes, want %d", name, len(got[name]), len(body))
				}
				if sum := sha256.Sum256([]byte(body)); !bytes.Equal(digests[name], sum[:]) {
					t.Errorf("digest of %s = %x, want %x", name, digests[name], sum)
				}
			}
		})
	}
}

// TestExtractRootfsParentCache: the parent directory kept open between
// entries never outlives a change of the tree: after the directory a
// symlink leads to is replaced, the next file through the symlink lands in
// the new directory, as a fresh lookup would put it.
func TestExtractRootfsParentCache(t *testing.T) {
	dest := t.TempDir()
	err := extractEnts(t, dest, ExtractOptions{},
		dirEnt("rootfs/x", 0o755),
		dirEnt("rootfs/x/b", 0o755),
		symlinkEnt("rootfs/a", "x"),
		fileEnt("rootfs/a/b/f1", "1"),
		fileEnt("rootfs/x", "now a file"),
		dirEnt("rootfs/x", 0o755),
		dirEnt("rootfs/x/b", 0o755),
		fileEnt("rootfs/a/b/f2", "2"),
		fileEnt("rootfs/x/b/f3", "3"),
		fileEnt("rootfs/x/b/f3", "3 again"),
	)
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(dest, "x", "b", "f1"))
	for name, want := range map[string]string{"f2": "2", "f3": "3 again"} {
		if got := readFile(t, filepath.Join(dest, "x", "b", name)); got != want {
			t.Errorf("x/b/%s = %q, want %q", name, got, want)
		}
	}
}
