package progress

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Board shows several bars at once on a terminal, one line each, for
// transfers that run in parallel (the layers of an image): each bar draws
// into a Slot, and the board redraws every line in place. On anything but
// a terminal a Slot is the writer itself: plain lines are whole lines,
// written one at a time, so they interleave cleanly.
type Board struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	lines []string
	drawn int // lines on screen, which the next redraw goes back over
}

// NewBoard returns a board drawing on w, or nil when w is not a terminal
// (a nil Board's Slot returns w).
func NewBoard(w io.Writer) *Board {
	f, ok := w.(*os.File)
	if !ok || f == nil || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	b := &Board{w: w, width: defaultWidth}
	if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
		b.width = cols
	}
	return b
}

// newTestBoard is a board on any writer, for tests.
func newTestBoard(w io.Writer, width int) *Board { return &Board{w: w, width: width} }

// Slot returns a writer for one bar: give it to New (or as a download's
// Progress) and the bar gets a line of the board.
func (b *Board) Slot(w io.Writer) io.Writer {
	if b == nil {
		return w
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, "")
	return &slot{b: b, i: len(b.lines) - 1}
}

// slot is one line of a board. Bars draw on it as on a terminal line:
// "\r" + line + "\x1b[K", and "\n" when done.
type slot struct {
	b *Board
	i int
}

func (s *slot) Write(p []byte) (int, error) {
	line := string(p)
	line = strings.TrimPrefix(line, "\r")
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\x1b[K")
	s.b.set(s.i, line)
	return len(p), nil
}

func (b *Board) set(i int, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines[i] = line
	var out strings.Builder
	if b.drawn > 0 {
		out.WriteString("\x1b[" + strconv.Itoa(b.drawn) + "A")
	}
	for _, l := range b.lines {
		out.WriteString("\r" + l + "\x1b[K\n")
	}
	b.drawn = len(b.lines)
	_, _ = io.WriteString(b.w, out.String())
}
