package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

// contents lists a rootfs as sorted entries: "/dir/", "/file=content",
// "/link@target".
func contents(t testing.TB, rootfs string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, rootfs), "/")
		switch {
		case rel == "/":
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, rel+"@"+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
			if err != nil {
				return err
			}
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", rootfs, err)
	}
	slices.Sort(out)
	return out
}

func newTestStore(t testing.TB, src Source, opts ...Option) *Store {
	t.Helper()
	return New(filepath.Join(t.TempDir(), "tree"), src, opts...)
}

func layerIDs(layers []Layer) []string {
	var out []string
	for _, l := range layers {
		out = append(out, l.Name)
	}
	return out
}

func TestPlanOrder(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, src *fakeSource) string // returns the top image
		want  []string                                   // layer names in order
		// wls gives, per layer, the images whose whitelists filter it.
		wls [][]string
	}{
		{
			name: "single image",
			build: func(t *testing.T, src *fakeSource) string {
				return src.add(t, "example.com/a", nil, nil)
			},
			want: []string{"example.com/a"},
			wls:  [][]string{nil},
		},
		{
			name: "spec example A -> [B, C], C -> [D]",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/b", nil, nil)
				src.add(t, "example.com/d", nil, nil)
				src.add(t, "example.com/c", depOn("example.com/d"), []string{"/c"})
				return src.add(t, "example.com/a", depOn("example.com/b", "example.com/c"), []string{"/a"})
			},
			want: []string{"example.com/b", "example.com/d", "example.com/c", "example.com/a"},
			wls:  [][]string{{"a"}, {"a", "c"}, {"a", "c"}, {"a"}},
		},
		{
			name: "diamond A -> [B, C], B -> [D], C -> [D] visits D twice",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/d", nil, []string{"/d"})
				src.add(t, "example.com/b", depOn("example.com/d"), []string{"/b"})
				src.add(t, "example.com/c", depOn("example.com/d"), nil)
				return src.add(t, "example.com/a", depOn("example.com/b", "example.com/c"), nil)
			},
			want: []string{"example.com/d", "example.com/b", "example.com/d", "example.com/c", "example.com/a"},
			wls:  [][]string{{"b", "d"}, {"b"}, {"d"}, nil, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			top := tt.build(t, src)
			names := map[string]string{}
			for n, id := range src.byName {
				names[id] = strings.TrimPrefix(n, "example.com/")
			}
			layers, err := newTestStore(t, src).Plan(context.Background(), top)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if got := layerIDs(layers); !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
			for i, l := range layers {
				var got []string
				for _, w := range l.Whitelists {
					got = append(got, names[w.Image])
				}
				if !slices.Equal(got, tt.wls[i]) {
					t.Errorf("layer %d (%s) filtered by %v, want %v", i, l.Name, got, tt.wls[i])
				}
				if l.Chain[0] != top || l.Chain[len(l.Chain)-1] != l.ImageID {
					t.Errorf("layer %d chain %v does not run from the top image to itself", i, l.Chain)
				}
			}
		})
	}
}

func TestPlanFailures(t *testing.T) {
	tests := []struct {
		name     string
		build    func(t *testing.T, src *fakeSource) string
		class    error
		mentions []string
	}{
		{
			name: "cycle of two",
			build: func(t *testing.T, src *fakeSource) string {
				a := src.add(t, "example.com/a", nil, nil)
				src.add(t, "example.com/b", depOn("example.com/a"), nil)
				src.setDeps(t, a, depOn("example.com/b"))
				return a
			},
			class:    errdefs.ErrInvalidArgument,
			mentions: []string{"cycle", "example.com/a", "example.com/b"},
		},
		{
			name: "image depending on itself",
			build: func(t *testing.T, src *fakeSource) string {
				return src.add(t, "example.com/self", depOn("example.com/self"), nil)
			},
			class:    errdefs.ErrInvalidArgument,
			mentions: []string{"cycle", "example.com/self"},
		},
		{
			name: "cycle below a diamond",
			build: func(t *testing.T, src *fakeSource) string {
				d := src.add(t, "example.com/d", nil, nil)
				src.add(t, "example.com/b", depOn("example.com/d"), nil)
				src.add(t, "example.com/c", depOn("example.com/d"), nil)
				src.setDeps(t, d, depOn("example.com/top"))
				return src.add(t, "example.com/top", depOn("example.com/b", "example.com/c"), nil)
			},
			class:    errdefs.ErrInvalidArgument,
			mentions: []string{"cycle", "example.com/top", "example.com/d"},
		},
		{
			name: "missing dependency",
			build: func(t *testing.T, src *fakeSource) string {
				return src.add(t, "example.com/a", depOn("example.com/gone"), nil)
			},
			class:    errdefs.ErrNotFound,
			mentions: []string{"example.com/gone", "example.com/a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			top := tt.build(t, src)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, err := newTestStore(t, src).Render(ctx, top)
			if time.Since(start) > time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if !errors.Is(err, tt.class) {
				t.Fatalf("error = %v, want %v", err, tt.class)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, src *fakeSource) string
		want  []string
	}{
		{
			name: "whitelist keeps listed paths of the image and its dependency",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/base", nil, nil,
					dir("etc"), file("etc/passwd", "root"), file("etc/shadow", "secret"),
					dir("bin"), file("bin/sh", "sh"), file("bin/ls", "ls"),
					dir("usr"), dir("usr/lib"), file("usr/lib/libc.so", "libc"))
				return src.add(t, "example.com/app", depOn("example.com/base"),
					[]string{"/etc/passwd", "/bin/sh", "/app/", "/opt/data/file"},
					dir("app"), file("app/run", "app"), file("extra", "x"),
					dir("opt"), dir("opt/data"), file("opt/data/file", "f"), file("opt/data/other", "o"))
			},
			// /app/ is listed, not its contents; /opt and /opt/data are
			// parents of a listed path.
			want: []string{"/app/", "/bin/", "/bin/sh=sh", "/etc/", "/etc/passwd=root", "/opt/", "/opt/data/", "/opt/data/file=f"},
		},
		{
			name: "the image beats its dependencies, a later dependency an earlier one",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/b", nil, nil, file("f", "B"), file("g", "B"), file("h", "B"))
				src.add(t, "example.com/c", nil, nil, file("f", "C"), file("g", "C"))
				return src.add(t, "example.com/a", depOn("example.com/b", "example.com/c"), nil, file("g", "A"))
			},
			want: []string{"/f=C", "/g=A", "/h=B"},
		},
		{
			// Extraction hashes contents by inode as it goes; the upper
			// layer frees the lower files' inodes while they may still be
			// hashed, and its files of the same size may reuse them. Verify
			// below reads everything back.
			name: "many same-size files replaced by an upper layer",
			build: func(t *testing.T, src *fakeSource) string {
				var lower, upper []member
				for i := range 300 {
					lower = append(lower, file(fmt.Sprintf("f%03d", i), "lower"))
					upper = append(upper, file(fmt.Sprintf("f%03d", i), "UPPER"))
				}
				src.add(t, "example.com/lower", nil, nil, lower...)
				return src.add(t, "example.com/upper", depOn("example.com/lower"), nil, upper...)
			},
			want: func() (w []string) {
				for i := range 300 {
					w = append(w, fmt.Sprintf("/f%03d=UPPER", i))
				}
				return w
			}(),
		},
		{
			name: "symlink to a directory in a lower layer is replaced by an upper directory, not followed",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/base", nil, nil,
					dir("real"), file("real/keep", "k"), symlink("lib", "/real"))
				return src.add(t, "example.com/app", depOn("example.com/base"), nil,
					dir("lib"), file("lib/new", "n"))
			},
			want: []string{"/lib/", "/lib/new=n", "/real/", "/real/keep=k"},
		},
		{
			name: "nested dependencies with whitelists at two levels",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/c", nil, nil,
					file("c1", "c"), file("c2", "c"), file("c3", "c"), dir("lib"), file("lib/x", "c"))
				src.add(t, "example.com/b", depOn("example.com/c"), []string{"/c1", "/c2", "/b", "/lib/x"},
					file("b", "b"), file("bx", "b"))
				return src.add(t, "example.com/a", depOn("example.com/b"), []string{"/c1", "/c3", "/b", "/a", "/lib/x"},
					file("a", "a"), file("ax", "a"))
			},
			// c2: A drops it. c3: B drops it, even though A lists it.
			want: []string{"/a=a", "/b=b", "/c1=c", "/lib/", "/lib/x=c"},
		},
		{
			name: "hardlinks, symlinks, modes and xattrs over a dependency",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/base", nil, nil,
					dir("bin"), file("bin/busybox", "bb"), member{name: "bin/sh", hard: "bin/busybox"},
					member{name: "bin/ls", hard: "bin/busybox"}, file("etc", "a file, then a directory"),
					member{name: "secret", body: "s", mode: 0o400}, symlink("lib", "usr/lib"))
				return src.add(t, "example.com/app", depOn("example.com/base"), nil,
					dir("etc"), member{name: "etc/conf", body: "c", mode: 0o640, xattrs: map[string]string{"user.nscn": "v"}},
					member{name: "etc/conf2", hard: "etc/conf"}, file("bin/ls", "not busybox any more"),
					member{name: "run", body: "r", mode: 0o755}, member{name: "big", body: strings.Repeat("big content ", 100000), mode: 0o644})
			},
			want: []string{
				"/big=" + strings.Repeat("big content ", 100000), "/bin/", "/bin/busybox=bb", "/bin/ls=not busybox any more",
				"/bin/sh=bb", "/etc/", "/etc/conf2=c", "/etc/conf=c", "/lib@usr/lib", "/run=r", "/secret=s",
			},
		},
		{
			name: "directories, files and symlinks replaced across layers, empty and sparse files, owners, a setgid directory with xattrs",
			build: func(t *testing.T, src *fakeSource) string {
				zeros := strings.Repeat("\x00", 1<<20)
				src.add(t, "example.com/lower", nil, nil,
					dir("gone"), file("gone/a", "a"), file("gone/b", "b"), dir("gone/sub"), file("gone/sub/c", "c"),
					file("becomes-dir", "file"), symlink("becomes-file", "gone/a"), file("becomes-link", "file"),
					file("empty-then-full", ""), member{name: "owned", body: "o", mode: 0o600, uid: 1000, gid: 1000})
				return src.add(t, "example.com/upper", depOn("example.com/lower"), nil,
					file("gone", "a file over a directory"), dir("becomes-dir"), file("becomes-dir/in", "in"),
					file("becomes-file", "was a symlink"), symlink("becomes-link", "becomes-file"),
					file("empty-then-full", "full"), file("empty", ""), file("sparse", zeros+"end"+zeros),
					member{name: "sgid/", mode: 0o2775, uid: 10, gid: 20, xattrs: map[string]string{"user.nscn.dir": "d"}},
					member{name: "sgid/file", body: "g", mode: 0o640, uid: 10, gid: 30})
			},
			want: []string{
				"/becomes-dir/", "/becomes-dir/in=in", "/becomes-file=was a symlink", "/becomes-link@becomes-file",
				"/empty-then-full=full", "/empty=", "/gone=a file over a directory", "/owned=o",
				"/sgid/", "/sgid/file=g", "/sparse=" + strings.Repeat("\x00", 1<<20) + "end" + strings.Repeat("\x00", 1<<20),
			},
		},
		{
			name: "diamond: the shared dependency is filtered differently on each path",
			build: func(t *testing.T, src *fakeSource) string {
				src.add(t, "example.com/d", nil, nil, file("d1", "d"), file("d2", "d"), file("shared", "d"))
				src.add(t, "example.com/b", depOn("example.com/d"), []string{"/d1", "/shared", "/b"}, file("b", "b"), file("shared", "b"))
				src.add(t, "example.com/c", depOn("example.com/d"), []string{"/d2", "/c"}, file("c", "c"))
				return src.add(t, "example.com/a", depOn("example.com/b", "example.com/c"), nil)
			},
			// Order D, B, D, C, A: B's /shared survives the second D pass,
			// which C's whitelist limits to /d2.
			want: []string{"/b=b", "/c=c", "/d1=d", "/d2=d", "/shared=b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				hashes []string
				times  []map[string]time.Time
			)
			for _, serial := range []bool{false, true} {
				tr := testRender(t, tt.build, tt.want, serial)
				hashes = append(hashes, tr.Hash)
				times = append(times, fileTimes(t, tr.Rootfs))
			}
			if hashes[0] != hashes[1] {
				t.Errorf("extraction with workers gives hash %s, serial %s", hashes[0], hashes[1])
			}
			if !maps.Equal(times[0], times[1]) {
				t.Errorf("extraction with workers gives file times %v, serial %v", times[0], times[1])
			}
		})
	}
}

// fileTimes returns the modification times of what is not a directory in
// rootfs, by path. (Directories made for entries without one of their
// own get the time of their creation.)
func fileTimes(t *testing.T, rootfs string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p[len(rootfs):]] = fi.ModTime()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testRender renders the image build makes, extracting with workers or
// serially, checks the result and returns the tree.
func testRender(t *testing.T, build func(t *testing.T, src *fakeSource) string, want []string, serial bool) *Tree {
	t.Helper()
	src := newFakeSource()
	src.serial = serial
	top := build(t, src)
	s := newTestStore(t, src)
	tr, err := s.Render(context.Background(), top)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if ref, err := referenceHash(context.Background(), tr.Rootfs, contentAlgo); err != nil || ref != tr.Hash {
		t.Errorf("tree hash %s, the reference walk gives %s (%v)", tr.Hash, ref, err)
	}
	{
		{
			if got := contents(t, tr.Rootfs); !slices.Equal(got, want) {
				t.Fatalf("rendered\n  %v\nwant\n  %v", got, want)
			}
			if tr.ImageIDs[len(tr.ImageIDs)-1] != top {
				t.Errorf("ImageIDs %v do not end with the top image", tr.ImageIDs)
			}
			m, err := os.ReadFile(filepath.Join(tr.Path, manifestFile))
			if err != nil || !strings.Contains(string(m), "ImageManifest") {
				t.Errorf("manifest %q, %v", m, err)
			}
			if err := s.Verify(context.Background(), tr.Key); err != nil {
				t.Errorf("Verify of a fresh tree: %v", err)
			}
		}
	}
	return tr
}

// TestRenderFailureMarksNothing: a render that fails, here while workers
// still write files, leaves no tree and no scratch directory, and the
// next render with a sound image succeeds.
func TestRenderFailureMarksNothing(t *testing.T) {
	members := []member{dir("d")}
	for i := range 60 {
		members = append(members, file(fmt.Sprintf("d/f%02d", i), strings.Repeat(fmt.Sprint(i), 20000)))
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, src *fakeSource, id string)
	}{
		{name: "the blob ends inside a file", damage: func(_ *testing.T, src *fakeSource, id string) {
			tb := src.images[id].tar
			src.truncate(id, len(tb)/2+bytes.Index(tb[len(tb)/2:], []byte("3030"))+7)
		}},
		{name: "a bad entry after the files", damage: func(t *testing.T, src *fakeSource, id string) {
			bad := src.add(t, "example.com/bad", nil, nil, append(members, member{name: "dangling", hard: "nowhere"})...)
			src.images[id].tar = src.images[bad].tar
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			id := src.add(t, "example.com/app", nil, nil, members...)
			good := slices.Clone(src.images[id].tar)
			tt.damage(t, src, id)
			s := newTestStore(t, src)
			if _, err := s.Render(context.Background(), id); err == nil {
				t.Fatal("Render of a broken image succeeded")
			}
			ents, err := os.ReadDir(s.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), lockSuffix) {
					t.Errorf("left in the store: %s", e.Name())
				}
			}
			if trees, err := s.List(context.Background()); err != nil || len(trees) != 0 {
				t.Errorf("List = %v, %v, want nothing", trees, err)
			}
			src.images[id].tar = good
			tr, err := s.Render(context.Background(), id)
			if err != nil {
				t.Fatalf("Render once the image is sound: %v", err)
			}
			if err := s.Verify(context.Background(), tr.Key); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestRenderReusesTree(t *testing.T) {
	src := newFakeSource()
	base := src.add(t, "example.com/base", nil, nil, file("f", "x"))
	top := src.add(t, "example.com/app", depOn("example.com/base"), nil)
	dir := filepath.Join(t.TempDir(), "tree")
	first, err := New(dir, src).Render(context.Background(), top)
	if err != nil {
		t.Fatal(err)
	}
	if !ValidKey(first.Key) || !strings.HasPrefix(first.Key, "deps-sha512-") {
		t.Fatalf("key %q", first.Key)
	}
	if st, err := os.Stat(first.Path); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("tree directory mode %v, %v; want 0700", st.Mode(), err)
	}
	second, err := New(dir, src).Render(context.Background(), top)
	if err != nil {
		t.Fatal(err)
	}
	if second.Key != first.Key || second.Path != first.Path || second.Hash != first.Hash {
		t.Fatalf("second render gave %+v, first %+v", second, first)
	}
	if n := src.openCount(base); n != 1 {
		t.Fatalf("base image opened %d times, want 1", n)
	}
	if !slices.Equal(first.ImageIDs, []string{base, top}) {
		t.Fatalf("ImageIDs %v", first.ImageIDs)
	}
}

func TestRenderConcurrent(t *testing.T) {
	src := newFakeSource()
	base := src.add(t, "example.com/base", nil, nil, dir("etc"), file("etc/os-release", "nscn"))
	top := src.add(t, "example.com/app", depOn("example.com/base"), nil, file("app", "a"))
	src.delay = 50 * time.Millisecond
	dir := filepath.Join(t.TempDir(), "tree")

	const n = 8
	var wg sync.WaitGroup
	trees := make([]*Tree, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// A Store per goroutine, like separate processes: each opens
			// its own lock file description, so they contend on flock.
			trees[i], errs[i] = New(dir, src).Render(context.Background(), top)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("render %d: %v", i, errs[i])
		}
		if trees[i].Path != trees[0].Path {
			t.Fatalf("render %d returned %s, render 0 %s", i, trees[i].Path, trees[0].Path)
		}
	}
	if b, a := src.openCount(base), src.openCount(top); b != 1 || a != 1 {
		t.Fatalf("images opened %d and %d times, want once each", b, a)
	}
	if got := contents(t, trees[0].Rootfs); !slices.Equal(got, []string{"/app=a", "/etc/", "/etc/os-release=nscn"}) {
		t.Fatalf("rendered %v", got)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

// A tree without its completion marker (a crash, or tampering) is never
// returned: Get and List skip it and Render starts over.
func TestIncompleteTreeIsRerendered(t *testing.T) {
	src := newFakeSource()
	top := src.add(t, "example.com/app", nil, nil, file("f", "x"))
	s := newTestStore(t, src)
	ctx := context.Background()
	tr, err := s.Render(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(tr.Path, completeFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.Rootfs, "f"), []byte("half-written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, tr.Key); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get of incomplete tree = %v, want NotFound", err)
	}
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("List = %v, %v; want nothing", l, err)
	}
	again, err := s.Render(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	if n := src.openCount(top); n != 2 {
		t.Fatalf("image opened %d times, want 2", n)
	}
	if got := contents(t, again.Rootfs); !slices.Equal(got, []string{"/f=x"}) {
		t.Fatalf("re-rendered %v", got)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, rootfs string)
		wantErr bool
	}{
		{name: "untouched"},
		{name: "times changed only", tamper: func(t *testing.T, rootfs string) {
			now := time.Now()
			for _, p := range []string{rootfs, filepath.Join(rootfs, "etc"), filepath.Join(rootfs, "etc", "conf")} {
				if err := os.Chtimes(p, now, now); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "content changed", wantErr: true, tamper: func(t *testing.T, rootfs string) {
			if err := os.WriteFile(filepath.Join(rootfs, "etc", "conf"), []byte("evil"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "setuid bit added", wantErr: true, tamper: func(t *testing.T, rootfs string) {
			if err := os.Chmod(filepath.Join(rootfs, "bin"), 0o755|os.ModeSetuid); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "file added", wantErr: true, tamper: func(t *testing.T, rootfs string) {
			if err := os.WriteFile(filepath.Join(rootfs, "new"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlink retargeted", wantErr: true, tamper: func(t *testing.T, rootfs string) {
			p := filepath.Join(rootfs, "link")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/shadow", p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newFakeSource()
			top := src.add(t, "example.com/app", nil, nil,
				dir("etc"), file("etc/conf", "good"), member{name: "bin", body: "#!", mode: 0o755}, symlink("link", "/etc/conf"))
			s := newTestStore(t, src)
			tr, err := s.Render(context.Background(), top)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tamper != nil {
				tt.tamper(t, tr.Rootfs)
			}
			err = s.Verify(context.Background(), tr.Key)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tr.Key) {
				t.Fatalf("Verify = %v, want FailedPrecondition naming the key", err)
			}
		})
	}
}

func TestGetListRemoveTouch(t *testing.T) {
	src := newFakeSource()
	a := src.add(t, "example.com/a", nil, nil, dir("ro"), file("f", "a"))
	b := src.add(t, "example.com/b", nil, nil, file("f", "b"))
	s := newTestStore(t, src)
	clock := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	ctx := context.Background()

	ta, err := s.Render(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	// A read-only directory must not stop removal.
	if err := os.Chmod(filepath.Join(ta.Rootfs, "ro"), 0o555); err != nil { //nolint:gosec // G302: a read-only directory is the case tested
		t.Fatal(err)
	}
	tb, err := s.Render(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if !ta.Rendered.Equal(clock) || !ta.LastUsed.Equal(clock) {
		t.Fatalf("rendered %v, last used %v; want %v", ta.Rendered, ta.LastUsed, clock)
	}

	// A render within a minute of the recorded use leaves it; a later
	// one records it.
	for _, step := range []struct {
		after time.Duration
		want  time.Time
	}{
		{after: 30 * time.Second, want: clock},
		{after: 2 * time.Minute, want: clock.Add(2 * time.Minute)},
	} {
		now := clock.Add(step.after)
		s.now = func() time.Time { return now }
		if _, err := s.Render(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, ta.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastUsed.Equal(step.want) {
			t.Fatalf("render %v later: last used %v, want %v", step.after, got.LastUsed, step.want)
		}
	}
	s.now = func() time.Time { return clock }

	clock = clock.Add(time.Hour)
	if err := s.Touch(ctx, ta.Key); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, ta.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsed.Equal(clock) || !got.Rendered.Equal(clock.Add(-time.Hour)) {
		t.Fatalf("after Touch: last used %v, rendered %v", got.LastUsed, got.Rendered)
	}

	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v", list, err)
	}

	if err := s.Remove(ctx, ta.Key); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := s.Get(ctx, ta.Key); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove = %v", err)
	}
	if err := s.Remove(ctx, ta.Key); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(s.dir, ta.Key+lockSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left behind (%v)", err)
	}
	if list, _ := s.List(ctx); len(list) != 1 || list[0].Key != tb.Key {
		t.Fatalf("List after Remove = %v", list)
	}

	for _, bad := range []string{"", "../x", "deps-sha512-zz", ta.Key + "/.."} {
		if _, err := s.Get(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Get(%q) = %v, want InvalidArgument", bad, err)
		}
		if err := s.Remove(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Remove(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	if err := s.Touch(ctx, ta.Key); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Touch of a removed tree = %v", err)
	}
}

func TestClean(t *testing.T) {
	src := newFakeSource()
	top := src.add(t, "example.com/app", nil, nil, file("f", "x"))
	s := newTestStore(t, src)
	ctx := context.Background()
	tr, err := s.Render(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	other := KeyPrefix + strings.Repeat("ab", 32)
	busy := KeyPrefix + strings.Repeat("cd", 32)
	mk := func(name string) {
		if err := os.MkdirAll(filepath.Join(s.dir, name, "rootfs", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk(tmpPrefix + other + "-123")   // crashed render
	mk(trashPrefix + other + "-456") // crashed removal
	mk(tmpPrefix + "garbage")        // no key
	mk(other)                        // tree without marker
	mk(tmpPrefix + busy + "-789")    // a render in progress
	if err := os.WriteFile(filepath.Join(s.dir, other+lockSuffix), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := s.lock(ctx, busy, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release(false)

	if err := s.Clean(ctx); err != nil {
		t.Fatalf("Clean: %v", err)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{tmpPrefix + busy + "-789", busy + lockSuffix, tr.Key, tr.Key + lockSuffix}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("after Clean: %v\nwant %v", names, want)
	}
}

func TestWhitelistAdmits(t *testing.T) {
	w := newWhitelist("id", []string{"/etc/ssl/certs/", "/bin/sh", "relative"})
	tests := []struct {
		name string
		path string
		want bool
	}{
		{name: "root", path: "/", want: true},
		{name: "listed file", path: "/bin/sh", want: true},
		{name: "listed directory, trailing slash dropped", path: "/etc/ssl/certs", want: true},
		{name: "parent of a listed path", path: "/etc/ssl", want: true},
		{name: "grandparent", path: "/etc", want: true},
		{name: "content of a listed directory", path: "/etc/ssl/certs/ca.pem", want: false},
		{name: "sibling", path: "/bin/ls", want: false},
		{name: "prefix that is not a parent", path: "/bi", want: false},
		{name: "relative entry made absolute", path: "/relative", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.Admits(tt.path); got != tt.want {
				t.Fatalf("Admits(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	if newWhitelist("id", nil) != nil {
		t.Error("an empty whitelist is not nil")
	}
	if got := w.Paths(); !slices.Equal(got, []string{"/bin/sh", "/etc/ssl/certs", "/relative"}) {
		t.Errorf("Paths = %v", got)
	}
}

// TestVerifyKeepsTheRecordedAlgorithm: new trees are hashed with
// contentAlgo; a tree recorded with sha512 or sha256 (before it) still
// verifies, and fails when changed; an unknown algorithm is an error.
func TestVerifyKeepsTheRecordedAlgorithm(t *testing.T) {
	ctx := context.Background()
	src := newFakeSource()
	top := src.add(t, "example.com/app", nil, nil, dir("etc"), file("etc/conf", "good"))
	s := newTestStore(t, src)
	tr, err := s.Render(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tr.Hash, contentAlgo+"-") {
		t.Fatalf("new tree hash %q, want algorithm %s", tr.Hash, contentAlgo)
	}
	setHash := func(h string) {
		t.Helper()
		p := filepath.Join(tr.Path, metaFile)
		b, err := os.ReadFile(p) //nolint:gosec // G304: a file the test made
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(b), tr.Hash, h, 1)), 0o644); err != nil { //nolint:gosec // G703: a file the test made
			t.Fatal(err)
		}
		tr.Hash = h
	}
	// The trees of earlier releases: sha512, then sha256.
	for _, legacy := range []struct {
		algo   string
		hexLen int
	}{{"sha512", 128}, {"sha256", 64}} {
		h, err := hashRootfs(ctx, tr.Rootfs, legacy.algo, nil)
		if err != nil || !strings.HasPrefix(h, legacy.algo+"-") || len(h) != len(legacy.algo)+1+legacy.hexLen {
			t.Fatalf("%s hash %q, %v", legacy.algo, h, err)
		}
		setHash(h)
		if err := s.Verify(ctx, tr.Key); err != nil {
			t.Fatalf("Verify of a %s tree: %v", legacy.algo, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tr.Rootfs, "etc", "conf"), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, tr.Key); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Verify of a changed sha256 tree = %v, want FailedPrecondition", err)
	}
	setHash("md5-" + strings.Repeat("0", 32))
	if err := s.Verify(ctx, tr.Key); err == nil {
		t.Error("Verify with an unknown algorithm succeeded")
	}
}

// TestRenderWithoutBLAKE3 is nscn's build (blake3_lean.go): a render that
// would hash with BLAKE3 fails with ErrNoHasher, a NotImplemented error,
// before it writes or locks anything, so that nscn can hand the command to
// nscn-fetch; a tree that exists is returned without hashing, and
// verifying a BLAKE3 tree fails the same way, while RenderAnyHash renders
// a tree hashed with SHA-256, which verifies.
// It swaps package variables, so it does not run in parallel.
func TestRenderWithoutBLAKE3(t *testing.T) {
	ctx := context.Background()
	src := newFakeSource()
	top := src.add(t, "example.com/app", nil, nil, dir("etc"), file("etc/conf", "good"))
	oldAlgo, oldNew := contentAlgo, newBLAKE3
	t.Cleanup(func() { contentAlgo, newBLAKE3 = oldAlgo, oldNew })

	// A tree rendered where BLAKE3 is linked (nscn-fetch).
	contentAlgo = "blake3"
	shared := newTestStore(t, src)
	rendered, err := shared.Render(ctx, top)
	if err != nil {
		t.Fatal(err)
	}
	newBLAKE3 = nil

	fresh := newTestStore(t, src)
	if _, err := fresh.Render(ctx, top); !errors.Is(err, ErrNoHasher) || !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("Render without BLAKE3 = %v, want ErrNoHasher and NotImplemented", err)
	}
	if _, err := os.Stat(fresh.dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed render left its store directory: %v", err)
	}

	again, err := shared.Render(ctx, top)
	if err != nil || again.Key != rendered.Key {
		t.Fatalf("Render of a rendered tree without BLAKE3 = %v, %v", again, err)
	}
	if err := shared.Verify(ctx, rendered.Key); !errors.Is(err, ErrNoHasher) {
		t.Errorf("Verify of a BLAKE3 tree without BLAKE3 = %v, want ErrNoHasher", err)
	}

	// RenderAnyHash (store.RestoreTree's) hashes with SHA-256 instead.
	tr, err := fresh.RenderAnyHash(ctx, top)
	if err != nil {
		t.Fatalf("RenderAnyHash without BLAKE3: %v", err)
	}
	if tr.Key != rendered.Key || !strings.HasPrefix(tr.Hash, "sha256-") {
		t.Errorf("RenderAnyHash gave tree %s hashed %s, want %s hashed with SHA-256", tr.Key, tr.Hash, rendered.Key)
	}
	if err := fresh.Verify(ctx, tr.Key); err != nil {
		t.Errorf("Verify of a SHA-256 tree: %v", err)
	}
	if got := contents(t, tr.Rootfs); !slices.Equal(got, contents(t, rendered.Rootfs)) {
		t.Errorf("RenderAnyHash rendered %v, Render %v", got, contents(t, rendered.Rootfs))
	}
}
