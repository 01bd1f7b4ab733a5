//go:build functional

package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/timeline"
)

// checkTimeline parses a run's stderr and checks that want (process
// phase pairs) appear in that order on one axis that starts at stage0
// and ends within the run's wall time.
func checkTimeline(t *testing.T, stderr string, wall time.Duration, want []string) {
	t.Helper()
	pts, err := timeline.Parse(strings.NewReader(stderr))
	if err != nil {
		t.Fatalf("parse timeline: %v\n%s", err, stderr)
	}
	var got []string
	for _, p := range pts {
		got = append(got, p.Proc+" "+p.Phase)
	}
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("timeline lacks %q in order; got:\n%s", want[i:], strings.Join(got, "\n"))
	}
	if first, last := pts[0].At, pts[len(pts)-1].At; first <= 0 || last > wall {
		t.Errorf("timeline runs from %v to %v, want within the run's %v after stage0's start", first, last, wall)
	}
}

// NSCN_TIMELINE=1 prints stage0's and the fly stage1's phases on one
// axis, and --inherit-env does not pass the timeline's variables to the
// app.
func TestTimelineFly(t *testing.T) {
	e := newEnv(t)
	e.extraEnv = []string{timeline.EnvEnable + "=1"}
	start := time.Now()
	r := e.ok("--insecure-options=image", "run", "--inherit-env", busybox(t), "--exec=/bin/env")
	wall := time.Since(start)
	checkTimeline(t, r.stderr, wall, []string{
		"stage0 flags-parsed", "stage0 stage1-image-found", "stage0 app-images-found", "stage0 trees-rendered",
		"stage0 pod-laid-out", "stage0 stage1-exec",
		"stage1-fly process-started", "stage1-fly start", "stage1-fly root-ready", "stage1-fly app-started", "stage1-fly app-exited", "stage1-fly status-written",
	})
	if strings.Contains(r.stdout, "NSCN_TIMELINE") {
		t.Errorf("the app inherited the timeline's variables:\n%s", r.stdout)
	}
	// Off by default: nothing printed.
	e.extraEnv = nil
	if r := e.ok("--insecure-options=image", "run", busybox(t), "--exec=/bin/true"); strings.Contains(r.stderr, timeline.Prefix) {
		t.Errorf("timeline printed without NSCN_TIMELINE:\n%s", r.stderr)
	}
}

// The commands of figures 5 and 7 of the bench mark their phases too:
// image render, list and rm (with pod.Remove's steps).
func TestTimelineRenderListRm(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.ok("--insecure-options=image", "run", "--uuid-file-save="+uuidFile, id, "--exec=/bin/true")
	e.extraEnv = []string{timeline.EnvEnable + "=1"}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"image", "render", id}, []string{"stage0 flags-parsed", "stage0 store-opened", "stage0 image-found", "stage0 tree-rendered", "stage0 image-marked-used"}},
		{[]string{"list"}, []string{"stage0 flags-parsed", "stage0 pods-listed", "stage0 pods-read"}},
		{[]string{"rm", "--uuid-file=" + uuidFile}, []string{
			"stage0 flags-parsed", "stage0 pod-found", "stage0 pod-locked", "stage0 pod-marked-exited-garbage",
			"stage0 stage1-gc-done", "stage0 pod-unmounted", "stage0 pod-marked-garbage", "stage0 pod-deleted",
		}},
	} {
		start := time.Now()
		r := e.ok(tt.args...)
		checkTimeline(t, r.stderr, time.Since(start), tt.want)
	}
	assertNoPods(t, e)
}
