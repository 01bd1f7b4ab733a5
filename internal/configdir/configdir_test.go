package configdir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat("x", size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.json", 2)
	write("a.json", 1)
	write("notes.txt", 1)
	if err := os.Mkdir(filepath.Join(dir, "d.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(dir, "c.json")); err != nil {
		t.Fatal(err)
	}
	files, err := Read(dir, "test configuration")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f.Path)+"="+string(f.Data))
	}
	if strings.Join(got, " ") != "a.json=x b.json=xx" {
		t.Fatalf("Read = %v", got)
	}
	if files, err := Read(filepath.Join(dir, "missing"), "x"); err != nil || len(files) != 0 {
		t.Fatalf("a missing dir: %v, %v", files, err)
	}
	write("big.json", MaxFileSize+1)
	if _, err := Read(dir, "test configuration"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "big.json") {
		t.Fatalf("an oversized file: %v", err)
	}
}

func TestDecode(t *testing.T) {
	type v struct {
		A string `json:"a"`
	}
	for _, tc := range []struct {
		name, in string
		want     string // "" for success
	}{
		{"one value", `{"a":"x"}`, ""},
		{"unknown field", `{"a":"x","b":1}`, `unknown field "b"`},
		{"two values", `{"a":"x"} {"a":"y"}`, "more than one JSON value"},
		{"not JSON", `a = x`, "parse thing"},
		{"empty", ``, "parse thing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got v
			err := Decode([]byte(tc.in), &got, "thing")
			if tc.want == "" {
				if err != nil || got.A != "x" {
					t.Fatalf("Decode = %v, %+v", err, got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Decode error = %v, want an InvalidArgument mentioning %q", err, tc.want)
			}
		})
	}
}
