package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
)

func TestRunWritesTheMountTargets(t *testing.T) {
	root := t.TempDir()
	if err := run(root); err != nil {
		t.Fatal(err)
	}
	want := units.MountTargets()
	ents, err := os.ReadDir(filepath.Join(root, sdpod.UnitDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Fatalf("%d files in the unit directory, want %d", len(ents), len(want))
	}
	for _, f := range want {
		b, err := os.ReadFile(filepath.Join(root, sdpod.UnitDir, f.Name)) //nolint:gosec // G304: the test's own directory
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != f.Content {
			t.Errorf("%s: %q, want %q", f.Name, b, f.Content)
		}
	}
}
