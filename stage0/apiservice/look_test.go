package apiservice

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/store"
)

// BenchmarkLook measures one look of the Watcher at a data directory of
// 100 exited pods and an unchanged index: the cost of each poll
// (Documentation/api-service.md, "How events are found").
func BenchmarkLook(b *testing.B) {
	dir := b.TempDir()
	for range 100 {
		if err := os.MkdirAll(filepath.Join(dir, "pods", "run", uuid.NewString()), 0o750); err != nil {
			b.Fatal(err)
		}
	}
	s := store.OpenReadOnly(context.Background(), dir)
	w := NewWatcher(dir, s, 0, nil)
	prev := w.look(context.Background(), nil)
	if len(prev.pods) != 100 {
		b.Fatalf("looked at %d pods, want 100", len(prev.pods))
	}
	b.ResetTimer()
	for b.Loop() {
		prev = w.look(context.Background(), prev)
	}
}
