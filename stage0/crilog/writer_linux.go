package crilog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Config is what one log writer copies, and where.
type Config struct {
	// PodDir is the pod's directory; StdoutFIFO and StderrFIFO are the
	// app's output FIFOs, relative to it.
	PodDir, StdoutFIFO, StderrFIFO string
	// StdinFIFO, when set, is the app's input FIFO (relative to PodDir):
	// the writer holds it open, so that the app reads no end of file
	// between attaches, and copies what attached clients send into it.
	StdinFIFO string
	// StdinOnce (the CRI's stdin_once): the writer closes the input FIFO
	// when the first attach that sent input ends, so that the app reads
	// an end of file then; later attaches get the output only.
	StdinOnce bool
	// ResizeFIFO, when set, is the FIFO (relative to PodDir) of the
	// app's terminal size (stage1abi.AppResizeFIFO): the writer writes a
	// frame there for each resize request.
	ResizeFIFO string
	// LogDir is the sandbox's log directory, LogPath the container's
	// file relative to it (the CRI's two halves of the path); with
	// LogPath empty, the output goes to attached clients only.
	LogDir, LogPath string
	// Control is the path of the control socket.
	Control string
	// Log receives the writer's own messages.
	Log *slog.Logger
}

// Writer is a log writer with its FIFOs and file open.
type Writer struct {
	cfg        Config
	log        *slog.Logger
	fifos      [2]*os.File
	stdinMu    sync.Mutex
	stdin      *os.File
	resize     *os.File
	attached   attachSet
	file       logFile
	entries    *podlog.File
	ctl        net.Listener
	done       chan struct{}
	answering  sync.WaitGroup
	closeOnce  sync.Once
	pollPeriod time.Duration
}

// Open opens the FIFOs, the log file and the control socket: once it
// returns, the app may start (its helper finds a reader on the FIFOs).
func Open(cfg Config) (_ *Writer, err error) {
	w := &Writer{cfg: cfg, log: cfg.Log, done: make(chan struct{}), pollPeriod: time.Second}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	for i, p := range []string{cfg.StdoutFIFO, cfg.StderrFIFO} {
		if w.fifos[i], err = openFIFO(cfg.PodDir, p); err != nil {
			return nil, fmt.Errorf("app output FIFO: %w", err)
		}
	}
	if cfg.StdinFIFO != "" {
		if w.stdin, err = openBeneath(cfg.PodDir, cfg.StdinFIFO, unix.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("app input FIFO: %w", err)
		}
		if st, err := w.stdin.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			return nil, fmt.Errorf("app input %s is not a FIFO", w.stdin.Name())
		}
	}
	if cfg.ResizeFIFO != "" {
		// Non-blocking: a frame the app's side does not read (its
		// helper is gone, the FIFO is full) is dropped, the writer
		// never waits on the pod.
		if w.resize, err = openBeneath(cfg.PodDir, cfg.ResizeFIFO, unix.O_RDWR|unix.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("app terminal size FIFO: %w", err)
		}
		if st, err := w.resize.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			return nil, fmt.Errorf("app terminal size FIFO %s is not a FIFO", w.resize.Name())
		}
	}
	if cfg.LogPath != "" {
		f, err := openLog(cfg.LogDir, cfg.LogPath)
		if err != nil {
			return nil, fmt.Errorf("container log: %w", err)
		}
		w.file.swap(f)
	} else {
		w.file.swap(nopWriteCloser{io.Discard})
	}
	w.entries = podlog.NewFile(&w.file, nil)
	if err := os.MkdirAll(filepath.Dir(cfg.Control), 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	_ = os.Remove(cfg.Control)
	old := unix.Umask(0o177)
	w.ctl, err = net.Listen("unix", cfg.Control)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return w, nil
}

func (w *Writer) close() {
	w.closeOnce.Do(func() {
		if w.ctl != nil {
			_ = w.ctl.Close()
			_ = os.Remove(w.cfg.Control)
		}
		for _, f := range w.fifos {
			if f != nil {
				_ = f.Close()
			}
		}
		w.closeStdin()
		if w.resize != nil {
			_ = w.resize.Close()
		}
		w.attached.closeAll()
		_ = w.file.Close()
	})
}

// Run copies both streams until each reaches its end of file (or ctx
// ends), serving the control socket meanwhile, then closes everything.
func (w *Writer) Run(ctx context.Context) error {
	go w.serve(ctx)
	var wg sync.WaitGroup
	for i, name := range []string{stage1abi.LogStreamStdout, stage1abi.LogStreamStderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := fanout{log: w.entries.Stream(name), set: &w.attached, stream: [...]byte{frameStdout, frameStderr}[i]}
			if err := w.copyFIFO(ctx, w.fifos[i], out); err != nil {
				w.log.WarnContext(ctx, "container output", "stream", name, "err", err)
			}
		}()
	}
	wg.Wait()
	// Waiters see the file complete: answer them before the socket goes.
	close(w.done)
	err := w.file.Err()
	w.close()
	w.answering.Wait()
	return err
}

// copyFIFO waits for the FIFO's writer (the app helper), then copies to
// its end of file. Before a writer has opened it, a read of the FIFO
// would be an end of file too; poll(2) tells the two apart, since Linux
// reports no hang-up before a first writer came. A FIFO unlinked before
// any writer came (the pod is gone) ends the wait.
func (w *Writer) copyFIFO(ctx context.Context, f *os.File, out io.Writer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var n int
		var perr error
		if err := rc.Control(func(fd uintptr) {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}} //nolint:gosec // G115: an fd
			n, perr = unix.Poll(pfd, int(w.pollPeriod/time.Millisecond))
		}); err != nil {
			return err
		}
		if perr != nil && !errors.Is(perr, unix.EINTR) {
			return fmt.Errorf("poll %s: %w", f.Name(), perr)
		}
		if n > 0 {
			break
		}
		if st, err := f.Stat(); err != nil || st.Sys().(*syscall.Stat_t).Nlink == 0 {
			return nil
		}
	}
	_, err = io.Copy(out, f)
	return err
}

// serve answers the control socket's requests until the listener closes.
func (w *Writer) serve(ctx context.Context) {
	for {
		c, err := w.ctl.Accept()
		if err != nil {
			return
		}
		w.answering.Add(1)
		go func() {
			defer w.answering.Done()
			w.answer(ctx, c)
		}()
	}
}

// The control requests and the answer that means done.
const (
	ReqReopen = "reopen"
	ReqWait   = "wait"
	ReqAttach = "attach"
	// ReqResize, followed by the rows and the columns, sets the size of
	// the app's terminal (Resize).
	ReqResize = "resize"
	// ReqAttachOutput is an attach whose client sends no input: its
	// end does not count as the first attach of a StdinOnce writer.
	ReqAttachOutput = "attach-output"
	answerOK        = "ok"
)

func (w *Writer) answer(ctx context.Context, c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	line, err := readLine(br)
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var resp string
	switch line {
	case ReqReopen:
		resp = answerOK
		if w.cfg.LogPath == "" {
			resp = "no log file"
		} else if err := w.reopen(); err != nil {
			w.log.WarnContext(ctx, "reopen container log", "err", err)
			resp = err.Error()
		}
	case ReqWait:
		<-w.done
		resp = answerOK
	case ReqAttach:
		w.attach(c, br, true)
		return
	case ReqAttachOutput:
		w.attach(c, br, false)
		return
	default:
		resp = "unknown request"
		if rows, cols, err := parseResize(line); err == nil {
			resp = w.setSize(rows, cols)
		} else if strings.HasPrefix(line, ReqResize+" ") {
			resp = err.Error()
		}
	}
	_, _ = io.WriteString(c, resp+"\n")
}

// readLine reads a request or answer line of at most 4096 bytes,
// without its newline.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for len(b) <= 4096 {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return strings.TrimSpace(string(b)), nil
		}
		b = append(b, c)
	}
	return "", errors.New("line too long")
}

// reopen opens LogPath anew, and closes the file it wrote before.
func (w *Writer) reopen() error {
	f, err := openLog(w.cfg.LogDir, w.cfg.LogPath)
	if err != nil {
		return err
	}
	w.file.swap(f)
	return nil
}

// Request sends req to the control socket at path and waits for the
// answer (ctx bounds the wait); an answer other than ok is an error.
func Request(ctx context.Context, path, req string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, req+"\n"); err != nil {
		return fmt.Errorf("log writer: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("log writer: %s: %w", req, err)
	}
	if a := strings.TrimSpace(line); a != answerOK {
		return fmt.Errorf("log writer: %s: %s", req, a)
	}
	return nil
}
