package crilog

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
// the writer holds the FIFO open. The writer closes the connection when
// the client's stdin ends or the app's output does.

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
// does (the writer closes the connection).
func (w *Writer) attach(c net.Conn, br *bufio.Reader) {
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
	if w.stdin != nil {
		// Plain reads and writes: no splice between the socket and the
		// FIFO, which the writer holds in blocking mode.
		_, _ = io.Copy(struct{ io.Writer }{w.stdin}, struct{ io.Reader }{br})
		return
	}
	_, _ = io.Copy(io.Discard, br)
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
	if _, err := io.WriteString(c, ReqAttach+"\n"); err != nil {
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
