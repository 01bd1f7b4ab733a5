package atomicfile

import (
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
