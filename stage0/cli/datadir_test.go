package cli

import (
	"archive/tar"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/datadir"
)

// writeTestACI writes a minimal plain ACI named name to path.
func writeTestACI(t *testing.T, path, name string) {
	t.Helper()
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier(name)
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: a file of the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mb)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(mb); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirIsNotWorldReadable fetches an image into a new data
// directory and into one an older nscn left world-readable: other users
// get nothing of either. Without the nscn group (as on most test machines
// and for a user's own data directory) the data directory is 0700.
func TestDataDirIsNotWorldReadable(t *testing.T) {
	aci := filepath.Join(t.TempDir(), "img.aci")
	writeTestACI(t, aci, "example.com/perm")
	tests := []struct {
		name   string
		before fs.FileMode // 0: no data directory yet
	}{
		{name: "new data directory"},
		{name: "world-readable data directory", before: 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tt.before != 0 {
				if err := os.Mkdir(dir, tt.before); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.before); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, err := runAppIn(t, dir, "--insecure-options=image", "fetch", aci); err != nil {
				t.Fatal(err)
			}
			blobs, _ := filepath.Glob(filepath.Join(dir, "cas", "blob", "sha512", "*", "sha512-*"))
			if len(blobs) != 1 {
				t.Fatalf("blobs %v, want one", blobs)
			}
			for _, p := range append([]string{dir, filepath.Join(dir, "cas"), filepath.Join(dir, "cas", "db", "index.db")}, blobs...) {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm()&0o007 != 0 {
					t.Errorf("%s is %v: other users may use it", p, fi.Mode())
				}
			}
			want, err := datadir.Lookup()
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != want.Mode() {
				t.Fatalf("data directory: %v, %v; want mode %v", fi.Mode(), err, want.Mode())
			}
		})
	}
}
