//go:build torture

package torture

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

// crashOp is one kind of nscn command the crash test kills.
type crashOp struct {
	name   string
	weight int
	// setup runs before the killed command, unkilled (fetch the image
	// to render, prepare the pod to run, ...). It returns the killed
	// command's arguments.
	setup func(c *crashRun, trial int) []string
	// pods says whether the command can start pod processes.
	pods bool
}

// crashRun is the state of one TestCrashSafety run.
type crashRun struct {
	t     *testing.T
	e     *env
	seed  uint64
	rng   *rand.Rand
	work  string
	big   string
	small func(trial int) string
	many  func(trial int) string
	// calib is each op's shortest duration seen when not killed.
	calib map[string]time.Duration
}

// trialRecord is what the test remembers of one trial, for the failure
// messages and the summary.
type trialRecord struct {
	n      int
	op     string
	delay  time.Duration
	landed bool
	code   int
}

func (r trialRecord) String() string {
	how := "finished first (exit " + fmt.Sprint(r.code) + ")"
	if r.landed {
		how = "killed"
	}
	return fmt.Sprintf("trial %d: %s, SIGKILL after %v: %s", r.n, r.op, r.delay.Round(time.Microsecond), how)
}

const podScript = "sleep 0.2"

func crashOps(t *testing.T) []crashOp {
	bb := busybox(t)
	app := []string{bb, "--exec=/bin/sh", "--", "-c", podScript}
	return []crashOp{
		{name: "fetch big image", weight: 3, setup: func(c *crashRun, _ int) []string {
			// Half the time the image is new to the store, half the
			// time it is fetched again over itself.
			if c.rng.IntN(2) == 0 {
				c.e.run(callTimeout, "image", "rm", "example.com/torture/big")
			}
			return []string{"--insecure-options=image", "fetch", c.big}
		}},
		{name: "fetch small image", weight: 1, setup: func(c *crashRun, trial int) []string {
			return []string{"--insecure-options=image", "fetch", c.small(trial)}
		}},
		{name: "image render", weight: 3, setup: func(c *crashRun, trial int) []string {
			id := strings.TrimSpace(c.e.ok("--insecure-options=image", "fetch", c.many(trial)).stdout)
			return []string{"image", "render", id}
		}},
		{name: "prepare", weight: 3, setup: func(*crashRun, int) []string {
			return append([]string{"--insecure-options=image", "prepare"}, app...)
		}},
		{name: "run", weight: 4, pods: true, setup: func(*crashRun, int) []string {
			return append([]string{"--insecure-options=image", "run"}, app...)
		}},
		{name: "run-prepared", weight: 2, pods: true, setup: func(c *crashRun, _ int) []string {
			uuid := strings.TrimSpace(c.e.ok(append([]string{"--insecure-options=image", "prepare"}, app...)...).stdout)
			return []string{"run-prepared", uuid}
		}},
		{name: "gc", weight: 2, setup: func(c *crashRun, _ int) []string {
			// Something to collect: an exited pod and a prepared one.
			c.e.ok("--insecure-options=image", "run", bb, "--exec=/bin/true")
			c.e.ok(append([]string{"--insecure-options=image", "prepare"}, app...)...)
			return []string{"gc", "--grace-period=0s", "--expire-prepared=1ns"}
		}},
		{name: "image gc", weight: 1, setup: func(c *crashRun, trial int) []string {
			// Something to remove: an image and its rendered tree.
			id := strings.TrimSpace(c.e.ok("--insecure-options=image", "fetch", c.many(trial)).stdout)
			c.e.ok("image", "render", id)
			return []string{"image", "gc", "--grace-period=0s"}
		}},
	}
}

// TestCrashSafety SIGKILLs nscn at seeded random points of fetch, render,
// prepare, run, run-prepared, gc and image gc, and checks after every
// batch of trials that the store verifies, that gc cleans every pod,
// that no mount, process or temporary file is left behind, and that nscn
// still works.
func TestCrashSafety(t *testing.T) {
	s := seed(t)
	c := &crashRun{t: t, e: newEnv(t), seed: s, rng: newRand(t, s), work: t.TempDir(), calib: map[string]time.Duration{}}
	trials, bigSize, batch := 200, 64<<20, 10
	if testing.Short() {
		trials, bigSize, batch = 20, 32<<20, 5
	}
	if *trialsFlag > 0 {
		trials = *trialsFlag
	}
	c.big = bigACI(t, c.work, bigSize)
	c.small = func(trial int) string {
		return writeACI(t, c.work, fmt.Sprintf("small-%d.aci", trial),
			manifest(t, "example.com/torture/small", map[string]any{"labels": labels("trial", fmt.Sprint(trial))}),
			[]member{dir0(), file("rootfs/trial", fmt.Sprint(trial))})
	}
	c.many = func(trial int) string { return manyFilesACI(t, c.work, fmt.Sprint(trial), 1500) }

	ops := crashOps(t)
	total := 0
	for _, op := range ops {
		total += op.weight
	}
	// Calibrate: each op once, unkilled, which also shows it works.
	for _, op := range ops {
		args := op.setup(c, -1)
		r := c.e.ok(args...)
		c.calib[op.name] = r.took
		t.Logf("calibration: %s took %v", op.name, r.took.Round(time.Millisecond))
	}
	c.checkBatch(nil)

	var records, pending []trialRecord
	for n := range trials {
		pick := c.rng.IntN(total)
		var op crashOp
		for _, o := range ops {
			if pick < o.weight {
				op = o
				break
			}
			pick -= o.weight
		}
		// Kill anywhere from the start to a little after the usual end.
		delay := time.Duration(c.rng.Float64() * 1.2 * float64(c.calib[op.name]))
		args := op.setup(c, n)
		k := c.e.runKilled(delay, args...)
		rec := trialRecord{n: n, op: op.name, delay: delay, landed: k.landed, code: k.code}
		if !k.landed && k.took < c.calib[op.name] {
			// Aim at the fastest run seen, so that most kills land.
			c.calib[op.name] = k.took
		}
		records, pending = append(records, rec), append(pending, rec)
		if k.panicked() {
			t.Fatalf("seed %d, %s: nscn panicked:\n%s", s, rec, k.result)
		}
		if op.pods {
			// The pod's processes die with its stage1 (Pdeathsig):
			// none may outlive the kill.
			if left := leftoverProcesses(c.e.dir, 150*time.Millisecond); len(left) > 0 {
				t.Fatalf("seed %d, %s: processes outlived the killed pod:\n%s", s, rec, procList(left))
			}
		}
		if len(pending) == batch || n == trials-1 {
			c.checkBatch(pending)
			pending = nil
		}
	}
	summarize(t, records)
}

// checkBatch checks the guarantees after a batch of killed commands, and
// fails naming the seed and the batch's trials.
func (c *crashRun) checkBatch(batch []trialRecord) {
	t, e := c.t, c.e
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		for _, r := range batch {
			b.WriteString("\n  " + r.String())
		}
		t.Fatalf("seed %d, after the batch of trials:%s\n%s", c.seed, b.String(), fmt.Sprintf(format, args...))
	}
	// The store: every blob is what its ID says, every complete tree
	// has the hash it recorded.
	if bad := append(e.imageVerify(), e.blobsMatchTheirNames()...); len(bad) > 0 {
		fail("the store is corrupt:\n%s", strings.Join(bad, "\n"))
	}
	// Pods: gc (mark, then sweep) collects every one of them.
	for range 2 {
		if r := e.run(callTimeout, "gc", "--grace-period=0s", "--expire-prepared=1ns"); r.code != 0 || r.timedOut || r.panicked() {
			fail("gc after the kills: %s", r)
		}
	}
	pods, news := e.pods()
	if len(pods) > 0 {
		fail("gc left pods: %v\nlist: %s", pods, e.run(callTimeout, "list", "--full").stdout)
	}
	if len(news) > 0 {
		// Documented: gc removes an interrupted creation once it is
		// ten minutes old. It must hold nothing mounted (checked
		// below) and is no pod.
		t.Logf("interrupted pod creations left for gc's 10-minute rule: %v", news)
	}
	if m := e.mounts(); len(m) > 0 {
		fail("mounts left under the data dir after gc: %v", m)
	}
	if left := leftoverProcesses(e.dir, time.Second); len(left) > 0 {
		fail("processes of pods left after gc:\n%s", procList(left))
	}
	// Images: image gc removes every leftover of the interrupted imports
	// and renders.
	if r := e.run(callTimeout, "image", "gc", "--grace-period=0s"); r.code != 0 || r.timedOut || r.panicked() {
		fail("image gc after the kills: %s", r)
	}
	if left := e.tempLeftovers(); len(left) > 0 {
		fail("image gc left temporary files: %v", left)
	}
	if bad := e.imageVerify(); len(bad) > 0 {
		fail("the store is corrupt after image gc:\n%s", strings.Join(bad, "\n"))
	}
	// And nscn still works on this data dir: nothing is wedged.
	if r := e.run(callTimeout, "--insecure-options=image", "run", busybox(t), "--exec=/bin/true"); r.code != 0 || r.timedOut {
		fail("a pod no longer runs after the kills: %s", r)
	}
}

func procList(ps []procInfo) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func summarize(t *testing.T, records []trialRecord) {
	type count struct{ trials, landed int }
	m := map[string]*count{}
	for _, r := range records {
		if m[r.op] == nil {
			m[r.op] = &count{}
		}
		m[r.op].trials++
		if r.landed {
			m[r.op].landed++
		}
	}
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "\n  %-18s %3d trials, %3d killed mid-way", n, m[n].trials, m[n].landed)
	}
	t.Logf("%d trials:%s", len(records), b.String())
}
