package casfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/datadir"
)

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dst string) // what is at dst's place before
		wantErr bool
	}{
		{name: "new directory", prepare: func(*testing.T, string) {}},
		{name: "over an older copy", prepare: func(t *testing.T, dst string) {
			t.Helper()
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a file where the directory goes", wantErr: true, prepare: func(t *testing.T, dst string) {
			t.Helper()
			if err := os.MkdirAll(filepath.Dir(filepath.Dir(dst)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Dir(dst), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "blob", "ab", "abcdef")
			tc.prepare(t, dst)
			f, err := CreateTemp(filepath.Join(dir, "tmp"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if _, err := f.WriteString("content"); err != nil {
				t.Fatal(err)
			}
			err = Place(f, dst)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Place succeeded with a file in the way")
				}
				if _, err := os.Stat(f.Name()); err != nil {
					t.Fatalf("the temporary file is gone after a failed Place: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst) //nolint:gosec // G304: the test's own temporary directory
			if err != nil || string(got) != "content" {
				t.Fatalf("dst = %q, %v", got, err)
			}
			st, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != datadir.FileMode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), datadir.FileMode)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
				t.Errorf("temporary files left: %v", ents)
			}
		})
	}
}

func TestCleanSparesLiveFiles(t *testing.T) {
	tmp := filepath.Join(t.TempDir(), "tmp")
	live, err := CreateTemp(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close() }()
	stale := filepath.Join(tmp, "ingest-stale")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink is not followed, and not removed: nothing the store makes.
	if err := os.Symlink("/etc/passwd", filepath.Join(tmp, "link")); err != nil {
		t.Fatal(err)
	}
	if err := Clean(context.Background(), tmp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale file not removed: %v", err)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("live file removed: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(tmp, "link")); err != nil {
		t.Errorf("symlink removed: %v", err)
	}
	if err := Clean(context.Background(), filepath.Join(tmp, "missing")); err != nil {
		t.Errorf("Clean of a missing directory: %v", err)
	}
}
