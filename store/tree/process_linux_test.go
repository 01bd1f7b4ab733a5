package tree

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const helperEnv = "NSCN_TREE_TEST_HELPER_DIR"

// processImages builds the same images in every process: tars are
// deterministic, so the IDs and the tree key agree.
func processImages(t testing.TB) (*fakeSource, string) {
	src := newFakeSource()
	src.add(t, "example.com/base", nil, nil, dir("etc"), file("etc/os-release", "nscn"))
	top := src.add(t, "example.com/app", depOn("example.com/base"), nil, file("app", "a"))
	return src, top
}

// TestRenderAcrossProcesses runs several copies of the test binary that
// render the same image into one directory at once: the flock lets exactly
// one of them render.
func TestRenderAcrossProcesses(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		renderHelper(t, dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "tree")
	const n = 4
	outs := make([]bytes.Buffer, n)
	errs := make([]bytes.Buffer, n)
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRenderAcrossProcesses$", "-test.count=1") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = &outs[i], &errs[i]
		wg.Go(func() { results[i] = cmd.Run() })
	}
	wg.Wait()
	renders := 0
	var paths []string
	for i := range n {
		if results[i] != nil {
			t.Fatalf("helper %d: %v\n%s%s", i, results[i], outs[i].String(), errs[i].String())
		}
		renders += strings.Count(errs[i].String(), "rendering tree")
		for line := range strings.Lines(outs[i].String()) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "TREE "); ok {
				paths = append(paths, p)
			}
		}
	}
	if renders != 1 {
		t.Fatalf("%d processes rendered, want 1", renders)
	}
	if len(paths) != n {
		t.Fatalf("got %d tree paths, want %d", len(paths), n)
	}
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("processes got different trees: %v", paths)
		}
	}
}

func renderHelper(t *testing.T, dir string) {
	src, top := processImages(t)
	src.delay = 100 * time.Millisecond
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := New(dir, src, WithLogger(log)).Render(context.Background(), top)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	fmt.Printf("TREE %s\n", tr.Path)
}
