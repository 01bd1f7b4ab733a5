//go:build torture

package torture

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// suspicious matches stderr that reports a problem: gc's "marked" and
// "removed" reports are fine, a word about locks or an error is not.
// "busy" and "lock" are whole words: fetch names the file it imports
// ("using image from file …/busybox.aci").
var suspicious = regexp.MustCompile(`(?i)\block|error|fail|\bbusy\b|timeout|timed out|panic|goroutine `)

// loopStep is one command of a concurrency loop.
type loopStep struct {
	name string
	args func(st *loopState) []string
	// after consumes the output (the prepared pod's UUID).
	after func(st *loopState, r result)
}

type loopState struct {
	loop, iter int
	small      string
	uuid       string
}

func loopSteps(t *testing.T) []loopStep {
	bb := busybox(t)
	return []loopStep{
		{name: "fetch busybox", args: func(*loopState) []string { return []string{"--insecure-options=image", "fetch", bb} }},
		{name: "fetch own image", args: func(st *loopState) []string { return []string{"--insecure-options=image", "fetch", st.small} }},
		{
			name: "prepare",
			args: func(*loopState) []string {
				return []string{"--insecure-options=image", "prepare", bb, "--exec=/bin/sh", "--", "-c", "exit 0"}
			},
			after: func(st *loopState, r result) { st.uuid = strings.TrimSpace(r.stdout) },
		},
		{name: "run-prepared", args: func(st *loopState) []string { return []string{"run-prepared", st.uuid} }},
		{name: "gc", args: func(*loopState) []string { return []string{"gc", "--grace-period=0s"} }},
		// image gc with its default grace period: it sweeps orphan blobs
		// and dead imports while the other loops import.
		{name: "image gc", args: func(*loopState) []string { return []string{"image", "gc"} }},
	}
}

// TestConcurrentLoops runs 8 loops of fetch, prepare, run-prepared, gc
// and image gc in parallel against one data dir, then the same work
// serially in a fresh one: no command may fail or complain (about locks
// or anything), and the parallel run may take at most 1.5 times as long
// as the serial one.
func TestConcurrentLoops(t *testing.T) {
	const loops = 8
	iters := 3
	if testing.Short() {
		// Two, not one: the first iteration of each loop is the cold one
		// (eight loops fetching the same busybox at once, which the
		// serial run pays once), and with one iteration that fixed cost
		// was most of the ratio, not the contention of loops that run.
		iters = 2
	}
	work := t.TempDir()
	smalls := make([][]string, loops)
	for l := range loops {
		for i := range iters {
			smalls[l] = append(smalls[l], writeACI(t, work, fmt.Sprintf("loop-%d-%d.aci", l, i),
				manifest(t, "example.com/torture/loop", map[string]any{"labels": labels("loop", fmt.Sprint(l), "iter", fmt.Sprint(i))}),
				[]member{dir0(), file("rootfs/loop", fmt.Sprint(l, i))}))
		}
	}
	steps := loopSteps(t)

	// stepTime sums each step's duration, for the log.
	var mu sync.Mutex
	stepTime := map[string]time.Duration{}
	// runLoop does one loop's work and returns its problems.
	runLoop := func(e *env, l int) []string {
		var problems []string
		for i := range iters {
			st := &loopState{loop: l, iter: i, small: smalls[l][i]}
			for _, s := range steps {
				r := e.run(callTimeout, s.args(st)...)
				mu.Lock()
				stepTime[s.name] += r.took
				mu.Unlock()
				if r.code != 0 || r.timedOut || suspicious.MatchString(r.stderr) {
					problems = append(problems, fmt.Sprintf("loop %d iteration %d, %s: timed out %v\n%s", l, i, s.name, r.timedOut, r))
					if r.code != 0 || r.timedOut {
						return problems
					}
				}
				if s.after != nil {
					s.after(st, r)
				}
			}
		}
		return problems
	}

	tests := []struct {
		name     string
		parallel bool
	}{
		{name: "serial", parallel: false},
		{name: "parallel", parallel: true},
	}
	took := map[string]time.Duration{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			clear(stepTime)
			var problems []string
			start := time.Now()
			if tt.parallel {
				var wg sync.WaitGroup
				for l := range loops {
					wg.Go(func() {
						p := runLoop(e, l)
						mu.Lock()
						problems = append(problems, p...)
						mu.Unlock()
					})
				}
				wg.Wait()
			} else {
				for l := range loops {
					problems = append(problems, runLoop(e, l)...)
				}
			}
			took[tt.name] = time.Since(start)
			var per []string
			for _, s := range steps {
				per = append(per, fmt.Sprintf("%s %v", s.name, stepTime[s.name].Round(time.Millisecond)))
			}
			t.Logf("%s: %d loops × %d iterations × %d commands in %v (summed per command: %s)", tt.name, loops, iters, len(steps), took[tt.name].Round(time.Millisecond), strings.Join(per, ", "))
			if len(problems) > 0 {
				t.Fatalf("%d commands failed or complained:\n%s", len(problems), strings.Join(problems, "\n"))
			}
			checkClean(t, e)
		})
	}
	serial, parallel := took["serial"], took["parallel"]
	if serial == 0 || parallel == 0 {
		t.Fatal("a run did not finish")
	}
	t.Logf("serial %v, parallel %v: ratio %.2f (limit 1.5)", serial.Round(time.Millisecond), parallel.Round(time.Millisecond), float64(parallel)/float64(serial))
	if float64(parallel) > 1.5*float64(serial) {
		t.Fatalf("8 parallel loops took %v, more than 1.5 × the %v of the same work done serially: contention", parallel, serial)
	}
}

// checkClean checks that the store verifies and that gc leaves no pod,
// mount or process.
func checkClean(t *testing.T, e *env) {
	t.Helper()
	if bad := append(e.imageVerify(), e.blobsMatchTheirNames()...); len(bad) > 0 {
		t.Fatalf("the store is corrupt:\n%s", strings.Join(bad, "\n"))
	}
	e.ok("gc", "--grace-period=0s", "--expire-prepared=1ns")
	e.ok("gc", "--grace-period=0s", "--expire-prepared=1ns")
	if pods, news := e.pods(); len(pods)+len(news) > 0 {
		t.Fatalf("pods left after gc: %v %v", pods, news)
	}
	if m := e.mounts(); len(m) > 0 {
		t.Fatalf("mounts left under the data dir: %v", m)
	}
	if left := leftoverProcesses(e.dir, time.Second); len(left) > 0 {
		t.Fatalf("processes left:\n%s", procList(left))
	}
	e.ok("image", "gc", "--grace-period=0s")
	if left := e.tempLeftovers(); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	ents, _ := filepath.Glob(filepath.Join(e.dir, "cas", "tree", "deps-*"))
	var trees []string
	for _, p := range ents {
		if !strings.HasSuffix(p, ".lock") {
			trees = append(trees, p)
		}
	}
	if len(trees) > 0 {
		t.Fatalf("image gc --grace-period=0s left trees: %v", trees)
	}
}
