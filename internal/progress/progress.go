// Package progress reports the progress of long transfers (downloads,
// imports) on a writer, normally stderr.
//
// On a terminal a Bar redraws one line in place, at most about ten times a
// second, with the bytes done and the total, the percentage and the rate.
// On anything else (a log file, a pipe, a CI console) it keeps logs clean: it
// writes a plain line only when a transfer is slow enough to need one (each
// further tenth of a known total, no more often than every few seconds) and
// one final line from Done.
//
// It never writes to stdout on its own, runs in stage0 and needs no
// privileges. A nil *Bar is valid and draws nothing, so callers need not
// check whether progress was asked for.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

const (
	// redrawEvery throttles terminal redraws to about ten a second.
	redrawEvery = 100 * time.Millisecond
	// plainEvery is the least time between two plain (non-terminal) lines.
	plainEvery = 3 * time.Second
	// plainEveryUnknown is the time between plain lines when the total is
	// unknown, so no tenth can be crossed.
	plainEveryUnknown = 15 * time.Second
	// defaultWidth is used when the terminal width cannot be read.
	defaultWidth = 80
	// minRateWindow is how long a transfer must have run before a rate is
	// shown; earlier figures are noise.
	minRateWindow = 500 * time.Millisecond
)

// Option changes how New sets up a Bar.
type Option func(*Bar)

// WithTerminal forces terminal (redrawn line) drawing on or off instead of
// detecting it from the writer. width is the line width to fit; 0 means 80.
func WithTerminal(on bool, width int) Option {
	return func(b *Bar) {
		b.tty = on
		b.width = width
		if b.width <= 0 {
			b.width = defaultWidth
		}
	}
}

// Bar tracks one transfer. Its methods are safe for concurrent use.
//
// Create it with New, feed it with Wrap, Add or Set while the transfer runs,
// and call Done once at the end, whatever the outcome: Done draws the last
// state and ends the terminal line. Nothing is drawn after Done.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	tty   bool
	width int
	now   func() time.Time

	total     int64 // <= 0: unknown
	done      int64
	start     time.Time
	startDone int64 // bytes already there at start (a resumed prefix); not counted in the rate

	lastDraw  time.Time // terminal: last redraw; plain: last line (or start)
	lastTenth int64     // plain: tenth of the total reported by the last line
	drawn     bool      // terminal: a line is on screen
	finished  bool
}

// New returns a Bar that draws on w for a transfer of total bytes (0 or less
// when unknown) described by label. Terminal drawing is used when w is an
// *os.File on a terminal, unless an Option says otherwise. A nil w draws
// nothing.
func New(w io.Writer, label string, total int64, opts ...Option) *Bar {
	b := &Bar{w: w, label: label, total: total, now: time.Now, width: defaultWidth}
	if sl, ok := w.(*slot); ok {
		b.tty, b.width = true, sl.b.width
	}
	if f, ok := w.(*os.File); ok && f != nil && term.IsTerminal(int(f.Fd())) {
		b.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			b.width = cols
		}
	}
	for _, o := range opts {
		o(b)
	}
	b.start = b.now()
	return b
}

// Wrap returns a reader that counts what it reads from r on the bar. On a
// nil Bar it returns r.
func (b *Bar) Wrap(r io.Reader) io.Reader {
	if b == nil {
		return r
	}
	return &reader{r: r, b: b}
}

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.b.Add(int64(n))
	}
	return n, err
}

// Add counts n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.update()
}

// Set sets the bytes done, for a transfer that resumed past a prefix or
// started over. The rate counts only bytes moved after the first Set or Add,
// so a resumed prefix does not inflate it.
func (b *Bar) Set(done int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == b.startDone || done < b.startDone {
		// Nothing counted yet, or a restart below the prefix: rebase
		// the rate on this point.
		b.startDone = done
		b.start = b.now()
	}
	b.done = done
	b.update()
}

// SetTotal changes the expected size (0 or less: unknown), for when it is
// learnt after New.
func (b *Bar) SetTotal(total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total = total
	b.update()
}

// Done draws the final state and ends the line. Later calls do nothing.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished || b.w == nil {
		b.finished = true
		return
	}
	b.finished = true
	if b.tty {
		b.write("\r" + b.ttyLine(b.now()) + "\x1b[K\n")
		return
	}
	b.write(b.plainLine(b.now(), true) + "\n")
}

// update draws if it is time to. b.mu is held.
func (b *Bar) update() {
	if b.finished || b.w == nil {
		return
	}
	now := b.now()
	if b.tty {
		if b.drawn && now.Sub(b.lastDraw) < redrawEvery {
			return
		}
		b.drawn = true
		b.lastDraw = now
		b.write("\r" + b.ttyLine(now) + "\x1b[K")
		return
	}
	since := now.Sub(b.start)
	if !b.lastDraw.IsZero() {
		since = now.Sub(b.lastDraw)
	}
	if b.total > 0 {
		tenth := b.done * 10 / b.total
		if tenth <= b.lastTenth || since < plainEvery {
			return
		}
		b.lastTenth = tenth
	} else if since < plainEveryUnknown {
		return
	}
	b.lastDraw = now
	b.write(b.plainLine(now, false) + "\n")
}

// write ignores errors: progress is advisory and must never fail a
// transfer.
func (b *Bar) write(s string) {
	_, _ = io.WriteString(b.w, s)
}

// figures returns the "12.3 MiB / 200.0 MiB", "6%" and "4.1 MiB/s" parts;
// pct and rate are empty when unknown.
func (b *Bar) figures(now time.Time) (amount, pct, rate string) {
	amount = Bytes(b.done)
	if b.total > 0 {
		amount += " / " + Bytes(b.total)
		p := b.done * 100 / b.total
		pct = fmt.Sprintf("%d%%", min(max(p, 0), 100))
	}
	if el := now.Sub(b.start); el >= minRateWindow {
		bps := float64(b.done-b.startDone) / el.Seconds()
		rate = Bytes(int64(max(bps, 0))) + "/s"
	}
	return amount, pct, rate
}

// plainLine is one log line: "label: 12.3 MiB / 200.0 MiB (6%), 4.1 MiB/s".
func (b *Bar) plainLine(now time.Time, final bool) string {
	amount, pct, rate := b.figures(now)
	var s strings.Builder
	if b.label != "" {
		s.WriteString(b.label + ": ")
	}
	s.WriteString(amount)
	if pct != "" {
		s.WriteString(" (" + pct + ")")
	}
	if final {
		s.WriteString(" in " + now.Sub(b.start).Round(100*time.Millisecond).String())
	}
	if rate != "" {
		s.WriteString(", " + rate)
	}
	return s.String()
}

// ttyLine is the redrawn line, fitted to the width:
// "label [=====>      ] 12.3 MiB / 200.0 MiB  6%  4.1 MiB/s".
func (b *Bar) ttyLine(now time.Time) string {
	amount, pct, rate := b.figures(now)
	tail := " " + amount
	if pct != "" {
		tail += " " + fmt.Sprintf("%4s", pct)
	}
	if rate != "" {
		tail += "  " + rate
	}
	// Leave the last column free so the cursor never wraps.
	room := b.width - 1 - utf8.RuneCountInString(tail)
	label := b.label
	const minBar = 12 // "[" + 10 + "]"
	if b.total > 0 && room >= minBar {
		if label != "" {
			// The label takes what the bar does not need, plus a space.
			label = clip(label, room-minBar-1)
		}
		barWidth := room
		if label != "" {
			label += " "
			barWidth -= utf8.RuneCountInString(label)
		}
		return label + drawBar(min(barWidth, 42), b.done, b.total) + tail
	}
	if label != "" {
		label = clip(label, room-1) + ":"
	}
	return clip(label+tail, b.width-1)
}

// drawBar renders "[=====>    ]" width columns wide.
func drawBar(width int, done, total int64) string {
	inner := width - 2
	if inner < 1 {
		return ""
	}
	filled := int(min(max(done, 0), total) * int64(inner) / total)
	var s strings.Builder
	s.WriteByte('[')
	switch {
	case filled >= inner:
		s.WriteString(strings.Repeat("=", inner))
	default:
		s.WriteString(strings.Repeat("=", filled))
		s.WriteByte('>')
		s.WriteString(strings.Repeat(" ", inner-filled-1))
	}
	s.WriteByte(']')
	return s.String()
}

// clip shortens s to n runes, marking a cut with "…".
func clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Bytes formats n with binary (IEC) units and one decimal: "512 B",
// "1.0 KiB", "12.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for (v >= unit || v <= -unit) && i < len(units)-1 {
		v /= unit
		i++
	}
	// 1023.95 KiB rounds to "1024.0 KiB"; show it as "1.0 MiB".
	if (v >= unit-0.05 || v <= -(unit-0.05)) && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
