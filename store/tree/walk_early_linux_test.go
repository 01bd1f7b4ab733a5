package tree

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/aci"
)

func TestKernelAtLeast(t *testing.T) {
	tests := []struct {
		release string
		want    bool
	}{
		{"6.9.0", true},
		{"6.18.44-fc-v1300", true},
		{"6.8.12-generic", false},
		{"6.9", true},
		{"6.10-rc1", true},
		{"7.0.1", true},
		{"5.15.0-91-generic", false},
		{"6", false},
		{"", false},
		{"x.y", false},
		{"6.x", false},
	}
	for _, tt := range tests {
		if got := kernelAtLeast(tt.release, 6, 9); got != tt.want {
			t.Errorf("kernelAtLeast(%q, 6, 9) = %v, want %v", tt.release, got, tt.want)
		}
	}
}

// TestAddRecordsNoXattrs: a file's record says it has no xattrs only when
// its descriptor shows none and the kernel adds none on close; the walk
// then trusts it (an xattr added afterwards does not show in the hash),
// and otherwise reads the tree's.
func TestAddRecordsNoXattrs(t *testing.T) {
	for _, trust := range []bool{true, false} {
		t.Run(fmt.Sprintf("closeAddsNoXattrs=%v", trust), func(t *testing.T) {
			old := closeAddsNoXattrs
			closeAddsNoXattrs = func() bool { return trust }
			t.Cleanup(func() { closeAddsNoXattrs = old })
			dir := t.TempDir()
			newHash, err := hashFunc(contentAlgo)
			if err != nil {
				t.Fatal(err)
			}
			h := newContentHasher(newHash)
			add := func(name string, xattr bool) {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(p, os.O_RDWR, 0) //nolint:gosec // G304: a file the test made
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = f.Close() }()
				if xattr {
					if err := unix.Fsetxattr(int(f.Fd()), "user.nscn.test", []byte("1"), 0); err != nil {
						t.Skipf("no user xattrs here: %v", err)
					}
				}
				d := newHash()
				d.Write([]byte(name))
				h.add(aci.WrittenFile{Path: name, Fd: int(f.Fd()), Digest: d.Sum(nil)})
			}
			add("plain", false)
			add("with-xattr", true)
			h.end()
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			byIno := direntInos(fd)
			_ = unix.Close(fd)
			for _, name := range []string{"plain", "with-xattr"} {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dir, name), &st); err != nil {
					t.Fatal(err)
				}
				r, ok := h.get([2]uint64{st.Dev, st.Ino})
				if !ok {
					t.Fatalf("no record of %s", name)
				}
				if want := trust && name == "plain"; r.noXattrs != want {
					t.Errorf("%s: record's noXattrs = %v, want %v", name, r.noXattrs, want)
				}
			}
			want, err := referenceHash(context.Background(), dir, contentAlgo)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := hashRootfs(context.Background(), dir, contentAlgo, h); err != nil || got != want {
				t.Fatalf("hashRootfs = %s, %v; reference %s", got, err, want)
			}
			// As if the kernel had added one on close after all.
			if err := unix.Lsetxattr(filepath.Join(dir, "plain"), "user.nscn.late", []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
			want, err = referenceHash(context.Background(), dir, contentAlgo)
			if err != nil {
				t.Fatal(err)
			}
			got, err := hashRootfs(context.Background(), dir, contentAlgo, h)
			if err != nil {
				t.Fatal(err)
			}
			if trusted := trust && byIno; trusted != (got != want) {
				t.Errorf("record trusted %v, but hash with the late xattr %s, reference %s", trusted, got, want)
			}
		})
	}
}

// TestWalkBeforeExtractionEnds: a walk started while extraction goes on
// (as render starts it at NamesDone) takes no regular file from the tree
// nor from its record before extraction has ended: a record already there
// may be that of an earlier file with the same inode number, and a file
// still being written has neither its final metadata nor its record.
func TestWalkBeforeExtractionEnds(t *testing.T) {
	dir := t.TempDir()
	hashFixture(t, dir, false)
	known := records(t, dir, contentAlgo)
	known.ended = false
	// A stale record of a file being written: wrong mode, wrong digest.
	p := filepath.Join(dir, "many/dir05/f010")
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	id := [2]uint64{st.Dev, st.Ino}
	good := known.records[id]
	stale := good
	stale.perm ^= 0o100
	stale.digest = []byte("stale")
	known.records[id] = stale
	if err := os.Chmod(p, 0o000); err != nil { // not its final mode yet
		t.Fatal(err)
	}

	type result struct {
		hash string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		h, err := hashRootfs(context.Background(), dir, contentAlgo, known)
		done <- result{h, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("the walk ended before extraction did: %s, %v", r.hash, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	// The worker finishes the file: its mode, then its record; then
	// extraction ends.
	if err := os.Chmod(p, os.FileMode(good.perm)); err != nil {
		t.Fatal(err)
	}
	known.mu.Lock()
	known.records[id] = good
	known.mu.Unlock()
	known.end()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	want, err := referenceHash(context.Background(), dir, contentAlgo)
	if err != nil {
		t.Fatal(err)
	}
	if r.hash != want {
		t.Errorf("walk started before the end = %s, reference %s", r.hash, want)
	}
}
