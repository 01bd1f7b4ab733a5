package fly

import (
	"os"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/mkimage"
)

// TestBuildScriptDeclaresImage keeps the image manifest the build script
// has mkstage1 write in step with this flavor's facts.
func TestBuildScriptDeclaresImage(t *testing.T) {
	b, err := os.ReadFile("../../scripts/build-stage1-fly.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := mkimage.Spec{
		Name:             ImageName,
		Entrypoints:      mkimage.Entrypoints{Run: EntrypointRun, Enter: EntrypointEnter, GC: EntrypointGC, Stop: EntrypointStop},
		InterfaceVersion: InterfaceVersion,
		EmptyPodRootfs:   EmptyPodRootfs,
	}
	if err := mkimage.CheckBuildScript(b, want); err != nil {
		t.Fatalf("scripts/build-stage1-fly.sh: %v", err)
	}
}
