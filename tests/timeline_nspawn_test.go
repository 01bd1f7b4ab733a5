//go:build functional && nspawn

package tests

import (
	"testing"
	"time"
)

// --debug turns the timeline on, and it reaches the app helper inside
// the nspawn pod, whose environment is not run's.
func TestTimelineNspawn(t *testing.T) {
	e := newEnv(t)
	start := time.Now()
	r := e.ok(append([]string{"--debug"}, nspawnRunArgs(t, busybox(t), "--exec=/bin/true")...)...)
	checkTimeline(t, r.stderr, time.Since(start), []string{
		"stage0 flags-parsed", "stage0 stage1-exec",
		"stage1 start", "stage1 pod-files-written", "stage1 nspawn-started",
		"app:busybox run-helper-started", "app:busybox pod-root-sealed", "app:busybox app-namespaces-entered", "app:busybox app-running",
		"app:busybox app-exited", "stage1 nspawn-exited",
	})
}
