package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/blob"
	"github.com/nosecone/nscn/store/tree"
)

// testImage imports an image named name into the fixture's store,
// renders it, and returns its key and tree.
func (f *podFixture) testImage(name string) (string, *tree.Tree) {
	f.t.Helper()
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier(name)
	tr := renderTestImage(f.t, f.dir, m, []testEntry{{name: "etc/hostname", body: name}})
	return blob.KeyFromID(tr.ImageIDs[len(tr.ImageIDs)-1]), tr
}

// storedKeys lists the keys of the fixture's images.
func (f *podFixture) storedKeys() []string {
	f.t.Helper()
	s, err := store.Open(f.t.Context(), f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	ims, err := s.Images(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	var keys []string
	for _, im := range ims {
		keys = append(keys, im.Key)
	}
	return keys
}

func TestImageRmRefusesBarePrefixes(t *testing.T) {
	f := newPodFixture(t)
	key, _ := f.testImage("example.com/only")
	tests := []struct {
		name   string
		refs   []string
		status int // of the ExitStatusErr; 0: success
		stderr string
	}{
		{name: "empty", refs: []string{""}, status: 2, stderr: `image rm "": image ID "" names no image`},
		{name: "bare prefix", refs: []string{"sha512-"}, status: 2, stderr: "names no image"},
		{name: "bare prefix without dash", refs: []string{"sha512"}, status: 2, stderr: "names no image"},
		{name: "upper case", refs: []string{"SHA512-"}, status: 2, stderr: "names no image"},
		{name: "bad and missing", refs: []string{"", "sha512-0000"}, status: 1, stderr: "not in the store"},
		{name: "missing", refs: []string{"sha512-0000"}, status: 1, stderr: "not in the store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := f.run(append([]string{"image", "rm"}, tt.refs...)...)
			var es ExitStatusErr
			if !errors.As(err, &es) || es.Status != tt.status {
				t.Fatalf("error = %v, want exit status %d", err, tt.status)
			}
			if !strings.Contains(errOut, tt.stderr) || strings.Count(errOut, "\n") != len(tt.refs) {
				t.Fatalf("stderr = %q, want one line per image and %q", errOut, tt.stderr)
			}
			if keys := f.storedKeys(); len(keys) != 1 || keys[0] != key {
				t.Fatalf("images = %v, want %s alone", keys, key)
			}
		})
	}
	if _, errOut, err := f.run("image", "rm", key[:len("sha512-")+1]); err != nil {
		t.Fatalf("image rm with one digit: %v\n%s", err, errOut)
	}
	if keys := f.storedKeys(); len(keys) != 0 {
		t.Fatalf("images left: %v", keys)
	}
}
