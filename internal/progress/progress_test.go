package progress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// clock is a fake time source the tests advance by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withClock(c *clock) Option { return func(b *Bar) { b.now = c.Now } }

const mib = 1 << 20

func TestBytes(t *testing.T) {
	tests := []struct {
		name string
		n    int64
		want string
	}{
		{name: "zero", n: 0, want: "0 B"},
		{name: "bytes", n: 512, want: "512 B"},
		{name: "just below KiB", n: 1023, want: "1023 B"},
		{name: "one KiB", n: 1024, want: "1.0 KiB"},
		{name: "fraction", n: 1536, want: "1.5 KiB"},
		{name: "MiB with decimal", n: 12*mib + 3*mib/10 + 1, want: "12.3 MiB"},
		{name: "200 MiB", n: 200 * mib, want: "200.0 MiB"},
		{name: "rounds up to next unit", n: mib - 1, want: "1.0 MiB"},
		{name: "GiB", n: 5 << 30, want: "5.0 GiB"},
		{name: "largest", n: 1<<63 - 1, want: "8.0 EiB"},
		{name: "negative", n: -2048, want: "-2.0 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Bytes(tt.n); got != tt.want {
				t.Errorf("Bytes(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

// step is one event fed to a Bar: wait, then add bytes (or set, or end).
type step struct {
	wait  time.Duration
	add   int64
	set   int64 // when >= 0 and add == 0: Set(set)
	total int64 // when > 0: SetTotal(total)
	done  bool
}

func add(wait time.Duration, n int64) step { return step{wait: wait, add: n, set: -1} }
func done(wait time.Duration) step         { return step{wait: wait, set: -1, done: true} }
func set(wait time.Duration, n int64) step { return step{wait: wait, set: n} }

func run(b *Bar, c *clock, steps []step) {
	for _, s := range steps {
		c.advance(s.wait)
		switch {
		case s.done:
			b.Done()
		case s.total > 0:
			b.SetTotal(s.total)
		case s.add != 0:
			b.Add(s.add)
		case s.set >= 0:
			b.Set(s.set)
		}
	}
}

func TestPlain(t *testing.T) {
	tests := []struct {
		name  string
		label string
		total int64
		steps []step
		want  []string // the lines written, in order
	}{
		{
			name:  "fast transfer writes only the final line",
			label: "busybox.aci",
			total: 100 * mib,
			steps: []step{add(100*time.Millisecond, 50*mib), add(100*time.Millisecond, 50*mib), done(0)},
			want:  []string{"busybox.aci: 100.0 MiB / 100.0 MiB (100%) in 200ms"},
		},
		{
			name:  "slow transfer reports tenths at most every few seconds",
			label: "big.aci",
			total: 100 * mib,
			steps: []step{
				add(time.Second, 5*mib),    // 5%, 1 s: nothing
				add(3*time.Second, 10*mib), // 15%, 4 s: line
				add(time.Second, 10*mib),   // 25%, 5 s: too soon
				add(2*time.Second, 5*mib),  // 30%, 7 s: line
				add(10*time.Second, 0),     // no bytes: nothing
				add(time.Second, 70*mib),   // 100%, 18 s: line
				done(2 * time.Second),
			},
			want: []string{
				"big.aci: 15.0 MiB / 100.0 MiB (15%), 3.8 MiB/s",
				"big.aci: 30.0 MiB / 100.0 MiB (30%), 4.3 MiB/s",
				"big.aci: 100.0 MiB / 100.0 MiB (100%), 5.6 MiB/s",
				"big.aci: 100.0 MiB / 100.0 MiB (100%) in 20s, 5.0 MiB/s",
			},
		},
		{
			name:  "unknown total reports on a longer interval",
			label: "stream",
			total: 0,
			steps: []step{
				add(5*time.Second, mib),
				add(10*time.Second, mib), // 15 s: line
				add(10*time.Second, mib), // 10 s after it: nothing
				done(0),
			},
			want: []string{
				"stream: 2.0 MiB, 136.5 KiB/s",
				"stream: 3.0 MiB in 25s, 122.9 KiB/s",
			},
		},
		{
			name:  "no label, failed half way",
			total: 10 * mib,
			steps: []step{add(0, 5*mib), done(0)},
			want:  []string{"5.0 MiB / 10.0 MiB (50%) in 0s"},
		},
		{
			name:  "done twice and adds after done write nothing more",
			label: "x",
			total: 1024,
			steps: []step{add(time.Second, 1024), done(0), done(time.Second), add(10*time.Second, 1)},
			want:  []string{"x: 1.0 KiB / 1.0 KiB (100%) in 1s, 1.0 KiB/s"},
		},
		{
			name:  "resumed prefix is not counted in the rate",
			label: "resume",
			total: 100 * mib,
			steps: []step{set(0, 90*mib), add(2*time.Second, 10*mib), done(0)},
			want:  []string{"resume: 100.0 MiB / 100.0 MiB (100%) in 2s, 5.0 MiB/s"},
		},
		{
			name:  "total learnt late",
			label: "late",
			steps: []step{{total: 4 * mib, set: -1}, add(time.Second, 2*mib), done(0)},
			want:  []string{"late: 2.0 MiB / 4.0 MiB (50%) in 1s, 2.0 MiB/s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := newClock()
			b := New(&buf, tt.label, tt.total, withClock(c))
			run(b, c, tt.steps)
			out := buf.String()
			if strings.ContainsAny(out, "\r\x1b") {
				t.Errorf("plain output has terminal control characters: %q", out)
			}
			got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestTerminal(t *testing.T) {
	tests := []struct {
		name      string
		label     string
		total     int64
		width     int
		steps     []step
		wantDraws int      // "\r" count, the final one included
		wantLast  []string // substrings of the final line
	}{
		{
			name:  "redraws are throttled to ten a second",
			label: "busybox.aci",
			total: 200 * mib,
			width: 100,
			steps: func() []step {
				var s []step
				for range 100 { // 100 adds over 1 s: ~10 draws
					s = append(s, add(10*time.Millisecond, 123*mib/1000))
				}
				return append(s, done(0))
			}(),
			wantDraws: 11,
			wantLast:  []string{"busybox.aci [", "12.3 MiB / 200.0 MiB", "  6%", "12.3 MiB/s"},
		},
		{
			name:      "complete bar",
			label:     "img",
			total:     10 * mib,
			width:     80,
			steps:     []step{add(time.Second, 10*mib), done(0)},
			wantDraws: 2,
			wantLast:  []string{"img [=====", "=====]", "10.0 MiB / 10.0 MiB", "100%", "10.0 MiB/s"},
		},
		{
			name:      "long label is clipped to the width",
			label:     strings.Repeat("très-long-nom-", 10) + ".aci",
			total:     10 * mib,
			width:     60,
			steps:     []step{add(time.Second, 5*mib), done(0)},
			wantDraws: 2,
			wantLast:  []string{"…", "[", "5.0 MiB / 10.0 MiB", "50%"},
		},
		{
			name:      "unknown total has no bar",
			label:     "stream",
			total:     -1,
			width:     80,
			steps:     []step{add(time.Second, 3*mib), done(0)},
			wantDraws: 2,
			wantLast:  []string{"stream: 3.0 MiB", "3.0 MiB/s"},
		},
		{
			name:      "narrow terminal drops the bar",
			label:     "image.aci",
			total:     10 * mib,
			width:     30,
			steps:     []step{add(time.Second, 5*mib), done(0)},
			wantDraws: 2,
			wantLast:  []string{"5.0 MiB / 10.0 MiB"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			c := newClock()
			b := New(&buf, tt.label, tt.total, WithTerminal(true, tt.width), withClock(c))
			run(b, c, tt.steps)
			out := buf.String()
			if !strings.HasSuffix(out, "\x1b[K\n") {
				t.Fatalf("terminal output does not end the line: %q", out)
			}
			if n := strings.Count(out, "\r"); n != tt.wantDraws {
				t.Errorf("%d draws, want %d: %q", n, tt.wantDraws, out)
			}
			if n := strings.Count(out, "\n"); n != 1 {
				t.Errorf("%d newlines, want 1", n)
			}
			draws := strings.Split(strings.TrimSuffix(out, "\x1b[K\n"), "\r")
			for _, d := range draws {
				d = strings.TrimSuffix(d, "\x1b[K")
				if w := utf8.RuneCountInString(d); w > tt.width-1 {
					t.Errorf("line %q is %d columns, wider than %d-1", d, w, tt.width)
				}
			}
			last := draws[len(draws)-1]
			for _, s := range tt.wantLast {
				if !strings.Contains(last, s) {
					t.Errorf("final line %q lacks %q", last, s)
				}
			}
		})
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name string
		size int
		bar  bool
	}{
		{name: "counts what is read", size: 3*mib + 17, bar: true},
		{name: "empty", size: 0, bar: true},
		{name: "nil bar passes through", size: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var b *Bar
			if tt.bar {
				b = New(&buf, "wrap", int64(tt.size))
			}
			data := bytes.Repeat([]byte{'x'}, tt.size)
			got, err := io.ReadAll(b.Wrap(bytes.NewReader(data)))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if len(got) != tt.size {
				t.Fatalf("read %d bytes, want %d", len(got), tt.size)
			}
			if !tt.bar {
				// Every method is nil-safe.
				b.Add(1)
				b.Set(2)
				b.SetTotal(3)
				b.Done()
				return
			}
			b.Done()
			{
				if b.done != int64(tt.size) {
					t.Errorf("bar counted %d bytes, want %d", b.done, tt.size)
				}
				if want := fmt.Sprintf("wrap: %s", Bytes(int64(tt.size))); !strings.HasPrefix(buf.String(), want) {
					t.Errorf("output %q does not start with %q", buf.String(), want)
				}
			}
		})
	}
}

func TestNilWriter(*testing.T) {
	b := New(nil, "nothing", 10)
	b.Add(5)
	b.Done() // must not panic
}

func TestConcurrentAdds(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "race", 1000*100, WithTerminal(true, 80))
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 100 {
				b.Add(100)
			}
		})
	}
	wg.Wait()
	b.Done()
	if b.done != 1000*100 {
		t.Fatalf("counted %d, want %d", b.done, 1000*100)
	}
}

// TestDetectTerminal checks the detection on real files: a regular file is
// not a terminal, a pseudo-terminal is, and its width is read.
func TestDetectTerminal(t *testing.T) {
	tests := []struct {
		name      string
		open      func(t *testing.T) *os.File
		wantTTY   bool
		wantWidth int
	}{
		{
			name: "regular file",
			open: func(t *testing.T) *os.File {
				f, err := os.OpenFile(t.TempDir()+"/log", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				return f
			},
			wantWidth: defaultWidth,
		},
		{
			name:      "pseudo-terminal",
			open:      openPTY,
			wantTTY:   true,
			wantWidth: 123,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.open(t)
			t.Cleanup(func() { _ = f.Close() })
			b := New(f, "detect", 10)
			if b.tty != tt.wantTTY || b.width != tt.wantWidth {
				t.Errorf("tty=%v width=%d, want tty=%v width=%d", b.tty, b.width, tt.wantTTY, tt.wantWidth)
			}
		})
	}
}

// openPTY opens the follower side of a new pseudo-terminal 123 columns wide,
// skipping when the host has no /dev/ptmx.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { _ = ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal %d: %v", n, err)
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 123}); err != nil {
		_ = pts.Close()
		t.Skipf("set pseudo-terminal size: %v", err)
	}
	return pts
}
