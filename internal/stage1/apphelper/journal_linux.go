package apphelper

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The app's output with the pod's journal (Documentation/logging.md; run's
// side is stage1/entrypoint's journal_linux.go):
//
//	app ─stdout pipe─▶ app helper ─▶ journald stream, priority 6 ─┐
//	    ─stderr pipe─▶ (the shim)  ─▶ journald stream, priority 3 ─┴▶ /var/log/journal/ID
//	                               ─▶ /nscn/io/APP/stdout, stderr ─▶ run ─▶ terminal
//
// The helper opens the two streams itself (the unit's StandardOutput=
// journal is one connection for stdout and stderr both, and carries the
// helper's own messages): journald takes the unit from the helper's
// cgroup (_SYSTEMD_UNIT), the identifier and priority from the stream's
// header.

// appOutput carries the output of an app that writes to the pod's
// journal: the app gets the write ends of two pipes as its stdout and
// stderr, and the helper copies each to its own (the unit's journal
// stream) with the line's priority, and to the app's FIFO as written.
type appOutput struct {
	Stdout, Stderr *os.File // the app's ends
	wg             sync.WaitGroup
	once           sync.Once
	// streams are the two journal streams and what their copies wrote
	// to them, read once the copies have ended (Wait).
	streams [2]journalOut
	closed  sync.Once
}

// journalOut is one copy's journal stream: conn is nil when the copy
// writes to the helper's own stdout or stderr instead (the unit's stream,
// see markUnitStream), wrote says that any of the app's bytes went to it,
// last is the last of them.
type journalOut struct {
	conn  *net.UnixConn
	wrote bool
	last  byte
}

// startAppOutput starts the copies of an app's output. Its FIFOs may
// have no reader (run is gone): the output then goes to the journal
// only. Without the pod's journald, the output goes to the helper's own
// stdout and stderr, the unit's journal stream.
func startAppOutput(ctx context.Context, log *slog.Logger, app string) (*appOutput, error) {
	var r, w []*os.File
	for range 2 {
		pr, pw, err := os.Pipe()
		if err != nil {
			for i := range r {
				_, _ = r[i].Close(), w[i].Close()
			}
			return nil, fmt.Errorf("app %s: create output pipe: %w", app, err)
		}
		r, w = append(r, pr), append(w, pw)
	}
	o := &appOutput{Stdout: w[0], Stderr: w[1]}
	for i, s := range []struct {
		unit     *os.File
		priority int
		fifo     string
	}{
		{os.Stdout, stage1abi.JournalPriorityStdout, sdpod.AppStdoutFIFO(app)},
		{os.Stderr, stage1abi.JournalPriorityStderr, sdpod.AppStderrFIFO(app)},
	} {
		var journal io.Writer = unitStream{s.unit}
		if c, err := journalStream(app, s.priority); err != nil {
			log.WarnContext(ctx, "app output to the unit's journal stream", "err", err)
		} else {
			journal = c
			o.streams[i].conn = c
		}
		fifo := openFIFOWriter(ctx, log, s.fifo)
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			defer func() { _ = r[i].Close() }()
			o.streams[i].wrote, o.streams[i].last = copyOutput(ctx, log, r[i], journal, fifo)
		}()
	}
	return o, nil
}

// unitStream is the helper's own stdout or stderr, the unit's journal
// stream, as the copy's journal: what is written to it is marked
// (markUnitStream), since the pod's end must then wait for journald to
// read it.
type unitStream struct{ w io.Writer }

func (u unitStream) Write(p []byte) (int, error) {
	unitStreamWritten.Store(true)
	return u.w.Write(p)
}

// openFIFOWriter opens an app's output FIFO for writing without waiting
// for a reader; nil when there is none.
func openFIFOWriter(ctx context.Context, log *slog.Logger, p string) *os.File {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		log.DebugContext(ctx, "app output to the journal only", "fifo", p, "err", err)
		return nil
	}
	// Blocking writes: an app outruns neither run nor the journal.
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), p)
}

// copyOutput copies r to the journal and to fifo (nil for none) until
// the end of file. A failure of one stops only that copy. wrote says
// that bytes went to the journal, last is the last of them.
func copyOutput(ctx context.Context, log *slog.Logger, r io.Reader, journal io.Writer, fifo *os.File) (wrote bool, last byte) {
	if fifo != nil {
		defer func() { _ = fifo.Close() }()
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if journal != nil {
				// Marked before the write: a write that fails
				// half-way may have sent some of it.
				p := buf[:n]
				wrote, last = true, p[len(p)-1]
				if _, werr := journal.Write(p); werr != nil {
					log.WarnContext(ctx, "app output no longer reaches the pod's journal", "err", werr)
					journal = nil
				}
			}
			if fifo != nil {
				if _, werr := fifo.Write(buf[:n]); werr != nil {
					log.DebugContext(ctx, "app output no longer reaches run", "err", werr)
					_ = fifo.Close()
					fifo = nil
				}
			}
		}
		if err != nil {
			return wrote, last
		}
	}
}

// CloseWriters closes the helper's copies of the app's ends, once the
// app has its own.
func (o *appOutput) CloseWriters() {
	o.once.Do(func() {
		for _, f := range []*os.File{o.Stdout, o.Stderr} {
			if f != nil {
				_ = f.Close()
			}
		}
	})
}

// Wait closes the helper's ends and waits until everything the app (and
// every process it left, which must be gone) wrote is copied.
func (o *appOutput) Wait() {
	o.CloseWriters()
	o.wg.Wait()
}

// Close waits for the copies (Wait) and closes the journal streams.
func (o *appOutput) Close() {
	o.Wait()
	o.closeStreams()
}

func (o *appOutput) closeStreams() {
	o.closed.Do(func() {
		for _, s := range o.streams {
			if s.conn != nil {
				_ = s.conn.Close()
			}
		}
	})
}

// drained waits, until ctx ends, for journald to have read everything
// the app's copies wrote to its streams (Wait must have returned), and
// reports whether it then has every line: a stream whose last byte was
// no newline holds a partial line that journald writes only at the
// stream's end of file, which must be waited for otherwise
// (syncJournal). A stream that carried no byte of the app's output (its
// header may be unread: journald may still be starting) holds no record
// to lose. The streams are closed on return, so that journald writes a
// partial line once it reads their end.
func (o *appOutput) drained(ctx context.Context) (bool, error) {
	defer o.closeStreams()
	complete := true
	for _, s := range o.streams {
		if !s.wrote || s.conn == nil {
			continue
		}
		if err := waitStreamRead(ctx, s.conn); err != nil {
			return false, err
		}
		if s.last != '\n' {
			complete = false
		}
	}
	return complete, nil
}

// journalStream connects to the pod's journald as a stream of the app's
// output (the protocol of sd_journal_stream_fd(3): a header of seven
// lines, identifier, unit, priority, level prefix, and forwarding to
// syslog, kmsg and console, then the lines of text). No level prefix:
// every line has the stream's priority, and a "<3>" the app writes stays
// in its text.
func journalStream(app string, priority int) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: units.JournalStdoutSocket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to the pod's journal: %w", err)
	}
	if err := c.CloseRead(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("connect to the pod's journal: %w", err)
	}
	if _, err := fmt.Fprintf(c, "%s\n%s\n%d\n0\n0\n0\n0\n", app, units.ServiceName(app), priority); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("write journal stream header: %w", err)
	}
	return c, nil
}

// HelperStderr is where the app helper of the app called name writes its
// own messages (its log and its error line): its stderr, the unit's
// journal stream, and, when the app's output goes to the pod's journal,
// the app's stderr FIFO too, so that nscn run prints them as before (the
// unit's stderr was that FIFO). The process that becomes the app
// (modeExecIn) has the app's stderr, which reaches both already.
//
// What it writes to stderr is marked (markUnitStream): the end of the
// pod waits for journald to have read it.
func HelperStderr(pod *sdpod.Pod, mode, name string) io.Writer {
	stderr := unitStream{os.Stderr}
	app, err := pod.AppByName(name)
	if err != nil || !app.Journal || mode == modeExecIn {
		return stderr
	}
	fifo := openFIFOWriter(context.Background(), slog.New(slog.DiscardHandler), sdpod.AppStderrFIFO(name))
	if fifo == nil {
		return stderr
	}
	return &bestEffort{ws: []io.Writer{stderr, fifo}}
}

// bestEffort writes to every writer that has not failed yet.
type bestEffort struct {
	ws     []io.Writer
	failed []bool
}

func (b *bestEffort) Write(p []byte) (int, error) {
	if b.failed == nil {
		b.failed = make([]bool, len(b.ws))
	}
	for i, w := range b.ws {
		if !b.failed[i] {
			if _, err := w.Write(p); err != nil {
				b.failed[i] = true
			}
		}
	}
	return len(p), nil
}
