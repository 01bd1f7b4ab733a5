package entrypoint

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestWatchEnded: run's watch makes the FIFO in the pod's root and
// reports the helper's byte once; before the byte, and after Close, it
// reports nothing (its held writer keeps the end of file away).
func TestWatchEnded(t *testing.T) {
	podDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(podDir, stage1abi.Stage1RootfsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := watchEnded(context.Background(), log, podDir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.C:
		t.Fatal("ended before the helper wrote")
	case <-time.After(50 * time.Millisecond):
	}
	f, err := os.OpenFile(inStage1(podDir, podEndedFIFO), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	select {
	case <-e.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the helper's byte was not reported")
	}
}

// TestWatchEndedClose: Close ends the reader without a report.
func TestWatchEndedClose(t *testing.T) {
	podDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(podDir, stage1abi.Stage1RootfsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := watchEnded(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), podDir)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	select {
	case <-e.C:
		t.Fatal("Close reported the pod ended")
	case <-time.After(50 * time.Millisecond):
	}
}
