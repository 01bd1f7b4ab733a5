package crilog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// An attach over the control socket, after the request line "attach"
// and the answer "ok":
//
//	client ──stdin bytes──────────────────────────▶ writer ─▶ app's stdin FIFO
//	client ◀──frames: stream (1 stdout, 2 stderr), ── writer ◀─ app's output
//	          length (uint32, big endian), bytes
//
// The client's end of file (a half close) ends its stdin, not the app's:
// the writer holds the FIFO open, unless it was started with StdinOnce,
// when it closes the FIFO as the first attach with input (request
// "attach") ends. A client with no input asks "attach-output". The
// writer closes the connection when the client's stdin ends or the
// app's output does.

// attachWriteTimeout bounds a write to one attached client: a client
// that does not read loses its attach, the app is not held up.
const attachWriteTimeout = 2 * time.Second

// The stream bytes of a frame.
const (
	frameStdout = 1
	frameStderr = 2
)

// maxFrame bounds a frame's length.
const maxFrame = 1 << 20

type attachSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (s *attachSet) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
}

func (s *attachSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *attachSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.conns = nil
}

// send writes one frame to every attached client, dropping those that
// fail.
func (s *attachSet) send(stream byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return
	}
	frame := make([]byte, 5+len(p))
	frame[0] = stream
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(p))) //nolint:gosec // G115: a read's length
	copy(frame[5:], p)
	for c := range s.conns {
		_ = c.SetWriteDeadline(time.Now().Add(attachWriteTimeout))
		if _, err := c.Write(frame); err != nil {
			_ = c.Close()
			delete(s.conns, c)
		}
	}
}

// fanout writes a stream's output to the log and to attached clients.
type fanout struct {
	log    io.Writer
	set    *attachSet
	stream byte
}

func (f fanout) Write(p []byte) (int, error) {
	_, _ = f.log.Write(p)
	f.set.send(f.stream, p)
	return len(p), nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// attach serves one attached client until its stdin ends or the output
// does (the writer closes the connection). withStdin: the client sends
// input (ReqAttach), which goes to the app's stdin FIFO when there is
// one; otherwise what it sends is dropped.
func (w *Writer) attach(c net.Conn, br *bufio.Reader, withStdin bool) {
	select {
	case <-w.done:
		_, _ = io.WriteString(c, "the container's output has ended\n")
		return
	default:
	}
	if _, err := io.WriteString(c, answerOK+"\n"); err != nil {
		return
	}
	w.attached.add(c)
	defer w.attached.remove(c)
	in := w.stdinFile()
	if !withStdin || in == nil {
		_, _ = io.Copy(io.Discard, br)
		return
	}
	// Plain reads and writes: no splice between the socket and the FIFO,
	// which the writer holds in blocking mode. A write after another
	// attach closed the FIFO (StdinOnce) fails, and ends this copy.
	_, _ = io.Copy(struct{ io.Writer }{in}, struct{ io.Reader }{br})
	if w.cfg.StdinOnce {
		// The first attach with input has ended: so does the app's
		// input, as its end of file (no other writer holds the FIFO).
		w.closeStdin()
	}
}

// stdinFile is the app's input FIFO, nil when there is none or it was
// closed (StdinOnce).
func (w *Writer) stdinFile() *os.File {
	w.stdinMu.Lock()
	defer w.stdinMu.Unlock()
	return w.stdin
}

// closeStdin closes the app's input FIFO, once.
func (w *Writer) closeStdin() {
	w.stdinMu.Lock()
	defer w.stdinMu.Unlock()
	if w.stdin != nil {
		_ = w.stdin.Close()
		w.stdin = nil
	}
}

// Attach attaches to the writer at the control socket path: in (nil for
// none) goes to the app's stdin, the app's output to stdout and stderr
// (nil to drop it), until in ends, the output ends, or ctx does.
func Attach(ctx context.Context, path string, in io.Reader, stdout, stderr io.Writer) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	c := conn.(*net.UnixConn)
	defer func() { _ = c.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	req := ReqAttach
	if in == nil {
		req = ReqAttachOutput
	}
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	br := bufio.NewReader(c)
	line, err := readLine(br)
	if err != nil {
		return fmt.Errorf("log writer: attach: %w", err)
	}
	if line != answerOK {
		return fmt.Errorf("log writer: attach: %s", line)
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(c, in)
			// The client's stdin ended: so does the attach.
			_ = c.CloseWrite()
		}()
	}
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return nil
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxFrame {
			return errors.New("log writer: attach: frame too long")
		}
		var out io.Writer
		switch hdr[0] {
		case frameStdout:
			out = stdout
		case frameStderr:
			out = stderr
		}
		if out == nil {
			out = io.Discard
		}
		if _, err := io.CopyN(out, br, int64(n)); err != nil {
			return nil
		}
	}
}
