package pod

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
)

// mkPods creates n pods, most in run/ (whose state needs a lock probe),
// the others spread over the other state directories.
func mkPods(t testing.TB, dataDir string, n int) {
	t.Helper()
	for i := range n {
		dir := dirRun
		if i%4 == 0 {
			dir = stateDirs[i/4%len(stateDirs)]
		}
		mkPodAt(t, dataDir, dir, uuid.NewString())
	}
}

// fastestList returns the best of several List timings.
func fastestList(t *testing.T, dataDir string, want int) time.Duration {
	t.Helper()
	best := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		pods, err := List(context.Background(), dataDir)
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if len(pods) != want {
			t.Fatalf("List returned %d pods, want %d", len(pods), want)
		}
		best = min(best, d)
	}
	return best
}

// TestListIsFast lists 1000 pods well within a second, and in time about
// linear in the number of pods. The bounds are loose for busy CI hosts;
// on a laptop 1000 pods take a few milliseconds.
func TestListIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1250 pod directories")
	}
	small, large := t.TempDir(), t.TempDir()
	mkPods(t, small, 250)
	mkPods(t, large, 1000)
	dSmall := fastestList(t, small, 250)
	dLarge := fastestList(t, large, 1000)
	t.Logf("List: 250 pods in %v, 1000 pods in %v", dSmall, dLarge)
	if dLarge > time.Second {
		t.Errorf("List of 1000 pods took %v, want under 1s", dLarge)
	}
	// Four times the pods: allow up to ten times the time, plus noise.
	if dLarge > 10*dSmall+50*time.Millisecond {
		t.Errorf("List is not linear: 250 pods in %v, 1000 in %v", dSmall, dLarge)
	}
}

func BenchmarkList1000(b *testing.B) {
	dataDir := b.TempDir()
	mkPods(b, dataDir, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := List(ctx, dataDir); err != nil {
			b.Fatal(err)
		}
	}
}
