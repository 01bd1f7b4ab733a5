package timeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables of the timeline.
const (
	// EnvEnable turns the timeline on when it is "1".
	EnvEnable = "NSCN_TIMELINE"
	// EnvBase carries the run's base instant, CLOCK_MONOTONIC nanoseconds.
	EnvBase = "NSCN_TIMELINE_BASE"
)

// Prefix starts every timeline line.
const Prefix = "nscn-timeline: "

// Timeline marks phases of one process of a run. The nil *Timeline is a
// valid, silent one: callers mark unconditionally.
type Timeline struct {
	proc  string
	base  time.Duration
	start time.Duration // this process's start (processStart)
	now   func() time.Duration
	w     io.Writer
}

// processStart is this process's earliest reading: this package imports
// nothing of the module's, so it is initialised early. Not first: the
// linker orders package initialisation by dependencies, then by import
// path, so the packages whose paths sort before this one's (in nscn,
// github.com/ProtonMail, appc, google's, klauspost's…) and their
// dependencies run their init first. The step to a process's
// "process-started" mark is therefore the exec, the Go runtime's start and
// those packages' initialisation.
var processStart = Monotonic()

// Monotonic reads CLOCK_MONOTONIC, the clock the base is counted on.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// FromEnv returns the timeline of process proc (a short name such as
// "stage0" or "app:web") as the environment asks: nil when it is off. A
// base in the environment is used; otherwise this process's start of the
// process's start is the base.
func FromEnv(proc string) *Timeline {
	return fromEnv(os.Getenv, proc, processStart, Monotonic, os.Stderr)
}

// New returns the timeline of process proc counted from base, a
// CLOCK_MONOTONIC reading that a parent handed over some other way than
// the environment (a config file of the pod); nil, off, when base is 0.
// Its lines go to w.
func New(proc string, base time.Duration, w io.Writer) *Timeline {
	if base <= 0 {
		return nil
	}
	return &Timeline{proc: proc, base: base, start: processStart, now: Monotonic, w: w}
}

type ctxKey struct{}

// NewContext returns ctx carrying t, for code that marks phases deep in
// a call tree.
func NewContext(ctx context.Context, t *Timeline) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the timeline NewContext put in ctx, or nil (off).
func FromContext(ctx context.Context) *Timeline {
	t, _ := ctx.Value(ctxKey{}).(*Timeline)
	return t
}

// Base is the run's base instant, 0 when the timeline is off.
func (t *Timeline) Base() time.Duration {
	if t == nil {
		return 0
	}
	return t.base
}

// Enable turns the timeline on for this process and the processes it
// starts with its environment (os.Setenv), keeping a base already there.
func Enable() {
	if os.Getenv(EnvEnable) != "1" {
		_ = os.Setenv(EnvEnable, "1")
	}
}

func fromEnv(getenv func(string) string, proc string, start time.Duration, now func() time.Duration, w io.Writer) *Timeline {
	if getenv(EnvEnable) != "1" {
		return nil
	}
	base := start
	if v, err := strconv.ParseInt(getenv(EnvBase), 10, 64); err == nil && v > 0 {
		base = time.Duration(v)
	}
	return &Timeline{proc: proc, base: base, start: start, now: now, w: w}
}

// Mark records that phase has just ended (or begun: a phase is named for
// the moment it marks, "stage1-exec", "app-started").
func (t *Timeline) Mark(phase string) {
	if t == nil {
		return
	}
	t.markAt(phase, t.now())
}

func (t *Timeline) markAt(phase string, at time.Duration) {
	off := at - t.base
	line := fmt.Sprintf("%s%+.3fms %s %s\n", Prefix, ms(off), word(t.proc), word(phase))
	_, _ = io.WriteString(t.w, line)
}

// MarkProcessStart records, as phase "process-started", the moment this
// process's Go runtime started (its first package variables were set):
// the step before it is the exec and the runtime's own start, the step
// after it package initialisation and main up to the next mark. It
// marks nothing in the process whose start is the base.
func (t *Timeline) MarkProcessStart() {
	if t == nil || t.base == t.start {
		return
	}
	t.markAt("process-started", t.start)
}

// Env is what a child process of the run needs in its environment to
// print on the same axis: empty when the timeline is off.
func (t *Timeline) Env() []string {
	if t == nil {
		return nil
	}
	return []string{EnvEnable + "=1", EnvBase + "=" + strconv.FormatInt(int64(t.base), 10)}
}

// Export puts Env's variables in this process's environment, for the
// processes it execs or starts with os.Environ.
func (t *Timeline) Export() {
	for _, kv := range t.Env() {
		k, v, _ := strings.Cut(kv, "=")
		_ = os.Setenv(k, v)
	}
}

// Strip returns env without the timeline's variables: they are the
// runtime's, not the apps' (--inherit-env must not pass them on).
func Strip(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvEnable+"=") && !strings.HasPrefix(kv, EnvBase+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Point is one parsed timeline line.
type Point struct {
	At    time.Duration // offset from the run's base
	Proc  string
	Phase string
}

// Parse reads the timeline lines out of r (other lines are skipped), in
// order of their offsets; a malformed timeline line is an error.
func Parse(r io.Reader) ([]Point, error) {
	var pts []Point
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), Prefix)
		if !ok {
			continue
		}
		p, err := parseLine(rest)
		if err != nil {
			return nil, fmt.Errorf("timeline line %q: %w", sc.Text(), err)
		}
		pts = append(pts, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading timeline: %w", err)
	}
	slices.SortStableFunc(pts, func(a, b Point) int { return cmpDuration(a.At, b.At) })
	return pts, nil
}

func cmpDuration(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseLine(s string) (Point, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return Point{}, fmt.Errorf("want offset, process and phase, got %d fields", len(f))
	}
	v, ok := strings.CutSuffix(f[0], "ms")
	if !ok || !strings.HasPrefix(v, "+") && !strings.HasPrefix(v, "-") {
		return Point{}, fmt.Errorf("offset %q: want +N.NNNms", f[0])
	}
	ms, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return Point{}, fmt.Errorf("offset %q: %w", f[0], err)
	}
	d := time.Duration(ms * float64(time.Millisecond))
	if ms != ms || d < -24*time.Hour || d > 24*time.Hour { // NaN or beyond any run
		return Point{}, fmt.Errorf("offset %q out of range", f[0])
	}
	return Point{At: d, Proc: f[1], Phase: f[2]}, nil
}

// Format writes points as a table: offset, the step from the point before,
// process and phase, so a reader sees which phase took the time.
func Format(w io.Writer, pts []Point) error {
	var prev time.Duration
	for i, p := range pts {
		step := p.At - prev
		if i == 0 {
			step = p.At
		}
		if _, err := fmt.Fprintf(w, "%9.3f ms  %+9.3f ms  %-12s %s\n", ms(p.At), ms(step), p.Proc, p.Phase); err != nil {
			return fmt.Errorf("writing timeline: %w", err)
		}
		prev = p.At
	}
	return nil
}

// word makes s one field of a line: Parse splits on white space.
func word(s string) string {
	if w := strings.Join(strings.Fields(s), "-"); w != "" {
		return w
	}
	return "-"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
