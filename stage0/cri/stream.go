package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/crilog"
)

// Streaming (Documentation/cri.md, "Streaming"): Exec, Attach and
// PortForward answer a URL of the streaming server, which the client
// (the kubelet, crictl) then connects to with the SPDY or WebSocket
// remote command and port forwarding protocols. The protocols are
// k8s.io/cri-streaming's, what containerd and cri-o serve; the server
// listens on loopback only, on an ephemeral port, and each URL holds a
// one-shot token that expires within a minute.

// StartStreaming starts the streaming server on 127.0.0.1 and an
// ephemeral port. It serves until ctx ends.
func (s *Server) StartStreaming(ctx context.Context) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr, Path: "/"}
	ss, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("streaming server: %w", err)
	}
	hs := &http.Server{Handler: ss, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	s.stream = ss
	s.log.Info("streaming server", "address", cfg.Addr)
	return nil
}

// Exec answers the URL of an exec in a running container.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.stream == nil {
		return nil, toStatus(errdefs.Newf(errdefs.ErrUnavailable, "no streaming server"))
	}
	if _, err := s.runningContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetCmd()) == 0 {
		return nil, toStatus(errdefs.InvalidArgument("exec: no command"))
	}
	return s.stream.GetExec(req)
}

// Attach answers the URL of an attach to a running container that has
// a log writer (a log path, or a standard input).
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.stream == nil {
		return nil, toStatus(errdefs.Newf(errdefs.ErrUnavailable, "no streaming server"))
	}
	c, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	if req.GetStdin() && !c.meta.Stdin {
		return nil, toStatus(errdefs.FailedPrecondition("container %s was created without stdin", c.meta.ID))
	}
	if req.GetTty() && !c.meta.TTY {
		return nil, toStatus(errdefs.FailedPrecondition("container %s was created without tty", c.meta.ID))
	}
	return s.stream.GetAttach(req)
}

// PortForward answers the URL of a port forwarding into a ready sandbox.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.stream == nil {
		return nil, toStatus(errdefs.Newf(errdefs.ErrUnavailable, "no streaming server"))
	}
	sb, err := s.sandbox(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	if sb == nil {
		return nil, toStatus(errdefs.NotFound("sandbox %s", req.GetPodSandboxId()))
	}
	return s.stream.GetPortForward(req)
}

func (s *Server) runningContainer(ctx context.Context, id string) (*container, error) {
	c, err := s.mustContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.sb.pod == nil || c.sb.pod.State != pod.Running {
		return nil, errdefs.FailedPrecondition("container %s: its sandbox is not running", id)
	}
	return c, nil
}

// streamRuntime runs what the streaming server's clients ask for.
type streamRuntime struct{ s *Server }

var _ streaming.Runtime = streamRuntime{}

// Exec runs cmd in the container as ExecSync does (nscn app exec),
// with the client's streams; with tty, on a new pseudo-terminal whose
// size follows the client's.
func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	s := r.s
	c, err := s.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	args := append(append(append([]string(nil), s.nscnArgs[1:]...), "app", "exec", c.sb.pod.UUID, "--app="+c.app, "--"), cmd...)
	x := exec.CommandContext(ctx, s.nscnArgs[0], args...) //nolint:gosec // G204: nscn itself, with the client's command for the container
	x.WaitDelay = 2 * time.Second
	if !tty {
		// The whole process group goes when the client does (ExecSync).
		x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
		if in != nil {
			x.Stdin = in
		}
		if out != nil {
			x.Stdout = out
		}
		if errw != nil {
			x.Stderr = errw
		}
		return exitError(x.Run())
	}
	return runOnTerminal(x, in, out, resize)
}

// runOnTerminal runs x with a new pseudo-terminal as its controlling
// terminal and standard streams, copying in to it and its output to out.
func runOnTerminal(x *exec.Cmd, in io.Reader, out io.WriteCloser, resize <-chan remotecommandserver.TerminalSize) error {
	ptm, pts, err := openPTY()
	if err != nil {
		return err
	}
	defer func() { _ = ptm.Close() }()
	x.Stdin, x.Stdout, x.Stderr = pts, pts, pts
	x.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGKILL) }
	fd := int(ptm.Fd())
	setSize := func(sz remotecommandserver.TerminalSize) {
		_ = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
	}
	// The client sends its terminal's size first thing: the command
	// starts with it, not with a 0x0 terminal (which `stty size` and
	// full-screen programs take for no size at all).
	if resize != nil {
		select {
		case sz, ok := <-resize:
			if ok {
				setSize(sz)
			}
		case <-time.After(time.Second):
		}
		go func() {
			for sz := range resize {
				setSize(sz)
			}
		}()
	}
	err = x.Start()
	_ = pts.Close()
	if err != nil {
		return err
	}
	if in != nil {
		go func() { _, _ = io.Copy(ptm, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if out != nil {
			// The terminal's read fails (EIO) once every holder of its
			// other side has closed it: the end of the output.
			_, _ = io.Copy(out, ptm)
		}
	}()
	err = x.Wait()
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	return exitError(err)
}

// openPTY opens a new pseudo-terminal: its master and its slave.
func openPTY() (ptm, pts *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open a terminal: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		_ = m.Close()
		return nil, nil, fmt.Errorf("unlock the terminal: %w", err)
	}
	sfd, err := ptyPeer(fd)
	if err != nil {
		_ = m.Close()
		return nil, nil, fmt.Errorf("open the terminal's peer: %w", err)
	}
	return m, os.NewFile(uintptr(sfd), "/dev/pts"), nil
}

// ptyPeer opens the slave of the master fd without a path lookup
// (TIOCGPTPEER, Linux 4.13): ioctl(fd, TIOCGPTPEER, flags).
func ptyPeer(fd int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TIOCGPTPEER), uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// exitError turns an exit status into the error the streaming server
// reports as the command's status.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return utilexec.CodeExitError{Err: err, Code: ee.ExitCode()}
	}
	return err
}

// Attach connects the client's streams to the container's log writer:
// what the client sends goes to the app's stdin, the app's output comes
// back as it is written (and goes to the log all the same).
func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	c, err := r.s.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	if tty && c.meta.TTY {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go r.s.forwardResizes(rctx, r.s.logControl(c), resize)
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	return crilog.Attach(ctx, r.s.logControl(c), in, stdout, stderr)
}

// PortForward connects stream to port on the sandbox's loopback: in the
// pod's network namespace (the one the pod directory's netns file
// names), or the host's for a sandbox on the host network.
func (r streamRuntime) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	s := r.s
	defer func() { _ = stream.Close() }()
	sb, err := s.sandbox(ctx, id)
	if err != nil {
		return err
	}
	if sb == nil {
		return errdefs.NotFound("sandbox %s", id)
	}
	if port <= 0 || port > 65535 {
		return errdefs.InvalidArgument("port %d", port)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	if sb.meta.HostNetwork {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp4", addr)
	} else {
		conn, err = dialInPod(ctx, sb.pod.Path, addr)
	}
	if err != nil {
		return fmt.Errorf("port forward to %s of sandbox %s: %w", addr, id, err)
	}
	defer func() { _ = conn.Close() }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(stream, conn)
	_ = stream.Close()
	wg.Wait()
	return nil
}

// dialInPod connects to addr from the pod's network namespace: a socket
// made on a thread that has entered the namespace stays in it. The
// thread goes back to the host's namespace before it is released; one
// that cannot is never released (the runtime ends it).
func dialInPod(ctx context.Context, podDir, addr string) (net.Conn, error) {
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.NetNSFile)) //nolint:gosec // G304: the pod directory's netns file, written by the stage1 on the host
	if err != nil {
		return nil, errdefs.With(errdefs.ErrFailedPrecondition, fmt.Errorf("the pod's network namespace: %w", err))
	}
	target, err := unix.Open(strings.TrimSpace(string(b)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the pod's network namespace: %w", err)
	}
	defer func() { _ = unix.Close(target) }()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() { _ = unix.Close(self) }()
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter the pod's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, derr := d.DialContext(ctx, "tcp4", addr)
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			// This thread stays in the pod's namespace: it ends with
			// the goroutine, locked.
			done <- result{c, derr}
			return
		}
		runtime.UnlockOSThread()
		done <- result{c, derr}
	}()
	res := <-done
	return res.c, res.err
}
