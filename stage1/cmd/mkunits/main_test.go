package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// TestRunWritesTheSharedUnits: the image gets every unit run leaves out,
// as units.Shared makes it, and the targets of the pod's mount units
// (units.MountTargets), and nothing else.
func TestRunWritesTheSharedUnits(t *testing.T) {
	root := t.TempDir()
	if err := run(root); err != nil {
		t.Fatal(err)
	}
	want, err := units.Shared(nspawn.UnitConfig().Journal)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, units.MountTargets()...)
	dir := filepath.Join(root, nspawn.ImageUnitDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(want) {
		t.Errorf("%d files in %s, want %d", len(ents), dir, len(want))
	}
	for _, f := range want {
		got, err := os.ReadFile(filepath.Join(dir, f.Name)) //nolint:gosec // G304: the test's own directory
		if err != nil {
			t.Error(err)
			continue
		}
		if string(got) != f.Content {
			t.Errorf("%s:\n%s\nwant\n%s", f.Name, got, f.Content)
		}
	}
}
