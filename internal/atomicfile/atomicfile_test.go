package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		existing string
		data     string
	}{
		{name: "new file", data: "1234\n"},
		{name: "replaces", existing: "old", data: "new"},
		{name: "empty", existing: "old", data: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.existing != "" {
				if err := os.WriteFile(filepath.Join(dir, "f"), []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(dir, "f", []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "f")) //nolint:gosec // G304: a file the test made
			if err != nil || string(b) != tt.data {
				t.Fatalf("content %q, %v; want %q", b, err, tt.data)
			}
			st, _ := os.Stat(filepath.Join(dir, "f"))
			if st.Mode().Perm() != 0o644 {
				t.Fatalf("mode %v", st.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("temporary files left: %v", ents)
			}
		})
	}
	if err := Write(filepath.Join(t.TempDir(), "missing"), "f", nil); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestPending(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" for none
		commit   bool
		want     string // dir/f afterwards; "" for absent
	}{
		{name: "commit new", commit: true, want: "0\n"},
		{name: "commit replaces", existing: "old", commit: true, want: "0\n"},
		{name: "discard keeps", existing: "old", want: "old"},
		{name: "discard without file", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "f")
			if tt.existing != "" {
				if err := os.WriteFile(f, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p, err := Prepare(dir, "f")
			if err != nil {
				t.Fatal(err)
			}
			// Until Commit, the file is what it was.
			if b, _ := os.ReadFile(f); string(b) != tt.existing { //nolint:gosec // G304: a file the test made
				t.Fatalf("before commit: content %q, want %q", b, tt.existing)
			}
			if tt.commit {
				if err := p.Commit([]byte("0\n")); err != nil {
					t.Fatal(err)
				}
			} else {
				p.Discard()
			}
			b, err := os.ReadFile(f) //nolint:gosec // G304: a file the test made
			switch {
			case tt.want == "" && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("dir/f: %q, %v; want it absent", b, err)
			case tt.want != "" && (err != nil || string(b) != tt.want):
				t.Fatalf("dir/f: %q, %v; want %q", b, err, tt.want)
			}
			if tt.commit {
				if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o644 {
					t.Fatalf("mode %v, %v; want 0644", st.Mode(), err)
				}
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if e.Name() != "f" {
					t.Fatalf("temporary file left: %s", e.Name())
				}
			}
		})
	}
	if _, err := Prepare(filepath.Join(t.TempDir(), "missing"), "f"); err == nil {
		t.Fatal("Prepare in a missing directory succeeded")
	}
}
