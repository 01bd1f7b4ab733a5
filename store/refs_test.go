package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/tree"
)

// testACIOn is an uncompressed ACI named name with one file, depending on
// the images named deps.
func testACIOn(t *testing.T, name string, deps ...string) []byte {
	t.Helper()
	m := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	var ds []map[string]string
	for _, d := range deps {
		ds = append(ds, map[string]string{"imageName": d})
	}
	if ds != nil {
		m["dependencies"] = ds
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return packACI(t, mb, name[len("example.com/"):], name)
}

// refsFixture is a store with example.com/base, example.com/app (which
// depends on base, rendered) and example.com/other.
type refsFixture struct {
	s                *Store
	base, app, other string // keys
	appTree          *tree.Tree
}

func newRefsFixture(t *testing.T) *refsFixture {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &refsFixture{s: s}
	for _, im := range []struct {
		key  *string
		name string
		deps []string
	}{{&f.base, "example.com/base", nil}, {&f.app, "example.com/app", []string{"example.com/base"}}, {&f.other, "example.com/other", nil}} {
		e, err := s.Import(ctx, bytes.NewReader(testACIOn(t, im.name, im.deps...)), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		*im.key = e.Key
	}
	app, err := s.Get(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	if f.appTree, err = s.Trees.Render(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *refsFixture) keys(t *testing.T) []string {
	t.Helper()
	ims, err := f.s.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, im := range ims {
		keys = append(keys, im.Key)
	}
	slices.Sort(keys)
	return keys
}

func TestRemoveRefusesHeldImages(t *testing.T) {
	tests := []struct {
		name    string
		hold    func(f *refsFixture, r *References)
		remove  func(f *refsFixture) string
		holders []string // nil: removed
	}{
		{name: "nothing held", hold: func(*refsFixture, *References) {}, remove: func(f *refsFixture) string { return f.app }},
		{
			name:    "the image of a held tree",
			hold:    func(f *refsFixture, r *References) { r.HoldTree("pod-1", f.appTree.Key) },
			remove:  func(f *refsFixture) string { return f.app },
			holders: []string{"pod-1"},
		},
		{
			name: "a dependency of a held tree, by prefix",
			hold: func(f *refsFixture, r *References) {
				r.HoldTree("pod-2", f.appTree.Key)
				r.HoldTree("pod-1", f.appTree.Key)
			},
			remove:  func(f *refsFixture) string { return f.base[:len("sha512-")+8] },
			holders: []string{"pod-1", "pod-2"},
		},
		{
			name:    "an image held directly, by its full ID",
			hold:    func(f *refsFixture, r *References) { r.HoldImage("pod-3", f.other+f.other[len("sha512-"):]) },
			remove:  func(f *refsFixture) string { return f.other },
			holders: []string{"pod-3"},
		},
		{
			name:   "another image than the held one",
			hold:   func(f *refsFixture, r *References) { r.HoldTree("pod-1", f.appTree.Key) },
			remove: func(f *refsFixture) string { return f.other },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRefsFixture(t)
			var refs References
			tt.hold(f, &refs)
			before := f.keys(t)
			im, err := f.s.Remove(t.Context(), tt.remove(f), refs)
			if tt.holders == nil {
				if err != nil {
					t.Fatalf("Remove: %v", err)
				}
				if slices.Contains(f.keys(t), im.Key) {
					t.Fatalf("image %s still stored", im.Key)
				}
				return
			}
			var iu *InUseError
			if !errors.As(err, &iu) || !errors.Is(err, errdefs.ErrFailedPrecondition) || !slices.Equal(iu.Holders, tt.holders) {
				t.Fatalf("Remove = %v, want an InUseError held by %v", err, tt.holders)
			}
			if after := f.keys(t); !slices.Equal(after, before) {
				t.Fatalf("images %v after a refused Remove, want %v", after, before)
			}
			if _, err := f.s.Trees.Get(t.Context(), f.appTree.Key); err != nil {
				t.Fatalf("the held tree is gone: %v", err)
			}
		})
	}
}

func TestGCSkipsHeldTreesAndImages(t *testing.T) {
	f := newRefsFixture(t)
	var refs References
	refs.HoldTree("pod-1", f.appTree.Key)
	rep, err := f.s.GC(t.Context(), GCOptions{Refs: refs})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Trees) != 0 || !slices.Equal(rep.Images, []string{f.other}) {
		t.Fatalf("GC removed trees %v and images %v, want only %s", rep.Trees, rep.Images, f.other)
	}
	if got, want := f.keys(t), sortedOf(f.base, f.app); !slices.Equal(got, want) {
		t.Fatalf("images %v, want %v", got, want)
	}
	// Once nothing holds them, they go.
	if _, err := f.s.GC(t.Context(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := f.keys(t); len(got) != 0 {
		t.Fatalf("images %v left", got)
	}
}

func sortedOf(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestRestoreTree(t *testing.T) {
	ctx := t.Context()
	f := newRefsFixture(t)
	key := f.appTree.Key
	if err := f.s.Trees.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   string
		image string
		class error
	}{
		{name: "rendered again from the image", key: key, image: "example.com/app"},
		{name: "there already", key: key, image: "example.com/nothing-needed"},
		{name: "no image of that name renders it", key: tree.KeyPrefix + f.base[len("sha512-"):], image: "example.com/base", class: errdefs.ErrNotFound},
		{name: "no image of that name", key: tree.KeyPrefix + f.other[len("sha512-"):], image: "example.com/gone", class: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.s.RestoreTree(ctx, tt.key, tt.image)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("RestoreTree = %v, want class %v", err, tt.class)
				}
				return
			}
			if err != nil || got.Key != tt.key || !slices.Equal(got.ImageIDs, f.appTree.ImageIDs) {
				t.Fatalf("RestoreTree = %+v, %v; want the tree %s of %v", got, err, tt.key, f.appTree.ImageIDs)
			}
		})
	}
}
