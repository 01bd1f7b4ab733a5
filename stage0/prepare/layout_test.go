package prepare

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestPreparedSync: Sync reaches every file preparation wrote, and fails,
// naming the pod, when one is gone rather than skipping it.
func TestPreparedSync(t *testing.T) {
	ctx := context.Background()
	p, err := pod.NewPod(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Unlock() })
	info := filepath.Join(p.Path, stage1abi.AppInfoDir("app"))
	if err := os.MkdirAll(info, 0o755); err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, f := range []string{filepath.Join(info, stage1abi.AppManifestFile), filepath.Join(p.Path, stage1abi.PodManifestFile)} {
		if err := writeFile(f, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		written = append(written, f)
	}
	prep := &Prepared{Pod: p, written: written}
	if err := prep.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := os.Remove(written[0]); err != nil {
		t.Fatal(err)
	}
	if err := prep.Sync(); err == nil {
		t.Error("Sync with a file gone succeeded")
	}
}
