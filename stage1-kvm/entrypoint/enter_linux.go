package entrypoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// EnterConfig is the input of Enter.
type EnterConfig struct {
	Args abiargs.EnterArgs
	Log  *slog.Logger
	// Term is enter's TERM, which the command gets when the app sets
	// none.
	Term                  string
	Stdin, Stdout, Stderr *os.File
}

// Enter implements the enter entrypoint, from the pod directory: it asks
// the guest's agent, on the enter port, to run the command in the app,
// confined exactly like the app, relays its stdin, stdout and stderr,
// and returns its status.
//
// What confines the command is computed here, on the host, as on
// nspawn: the app's spec and policy from the pod manifest and run's
// isolation record (IsolationFile), the user and groups from the record
// the app's helper wrote when the app started (sdpod.CredsFile). The
// agent finds a running process of the app and starts the command in its
// PID and mount namespaces, its unit's cgroup and a cgroup namespace
// rooted there (guest.EnterServer). SIGINT, SIGQUIT, SIGTERM and SIGHUP
// that enter receives are passed on to the command. The command gets
// pipes, not a terminal.
func Enter(ctx context.Context, cfg EnterConfig) (int, error) {
	args := cfg.Args
	log := cfg.Log.With("app", args.AppName)
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	pid, alive := livePID(podDir, QemuPIDFile, "qemu")
	if !alive || pid != args.PID {
		return 0, errdefs.FailedPrecondition("the pod's guest (pid %d) is not running", args.PID)
	}
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return 0, err
	}
	ra, err := sdpod.RuntimeApp(pm, args.AppName)
	if err != nil {
		return 0, err
	}
	spec, err := appspec.NewAppSpec(ra, appspec.EnvOptions{Term: cfg.Term})
	if err != nil {
		return 0, err
	}
	var iso sdpod.Isolation
	switch data, err := os.ReadFile(filepath.Join(podDir, IsolationFile)); { //nolint:gosec // G304: a file of the pod directory, on the host
	case errors.Is(err, fs.ErrNotExist):
		// A pod started without the record: confine with the
		// defaults, never less.
	case err != nil:
		return 0, fmt.Errorf("read pod isolation: %w", err)
	default:
		if err := json.Unmarshal(data, &iso); err != nil {
			return 0, errdefs.Newf(errdefs.ErrInvalidArgument, "parse %s: %w", IsolationFile, err)
		}
	}
	policy, _, err := isolate.PolicyForRuntimeApp(ra, iso.Options)
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", args.AppName, err)
	}
	creds, err := apphelper.ReadCredsRecord(podDir, args.AppName)
	if err != nil {
		return 0, err
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return 0, err
	}
	req := guest.EnterRequest{
		Nonce: hex.EncodeToString(nonce[:]), Spec: spec, Policy: policy, Cmd: args.Cmd, Debug: DebugFromEnv(),
		Creds: isolate.Creds{UID: creds.UID, GID: creds.GID, Groups: creds.Groups},
	}
	data, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("encode enter request: %w", err)
	}
	conn, err := dialState(podDir, EnterSocket)
	if err != nil {
		return 0, fmt.Errorf("connect to the guest's agent: %w", err)
	}
	defer func() { _ = conn.Close() }()
	log.DebugContext(ctx, "enter request", "cmd", args.Cmd)
	if err := guest.WriteFrame(conn, guest.FrameRequest, data); err != nil {
		return 0, fmt.Errorf("send enter request: %w", err)
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP)
	defer signal.Stop(sigc)
	return relayEnter(ctx, log, conn, req.Nonce, cfg, sigc)
}

// relayEnter relays a session on conn until the command's status
// arrives.
func relayEnter(ctx context.Context, log *slog.Logger, conn net.Conn, nonce string, cfg EnterConfig, sigc <-chan os.Signal) (int, error) {
	out := &lockedConn{c: conn}
	started := false
	// One token per stdin frame in flight, returned by its FrameStdinAck.
	window := make(chan struct{}, guest.StdinWindow)
	startStdin := func() {
		go func() {
			if cfg.Stdin != nil {
				if err := sendStdin(out, cfg.Stdin, window); err != nil {
					log.DebugContext(ctx, "stdin", "err", err)
				}
			}
			_ = guest.WriteFrame(out, guest.FrameStdinEOF, nil)
		}()
		go func() {
			for sig := range sigc {
				if s, ok := sig.(unix.Signal); ok && s > 0 && s < 256 {
					_ = guest.WriteFrame(out, guest.FrameSignal, []byte{byte(s)})
				}
			}
		}()
	}
	for {
		typ, p, err := guest.ReadFrame(conn)
		if err != nil {
			return 0, fmt.Errorf("the guest's agent ended the enter session: %w", err)
		}
		if !started {
			// Frames of an earlier session that ended before they were
			// read come first: skipped.
			switch {
			case typ == guest.FrameStarted && string(p) == nonce:
				started = true
				startStdin()
			case typ == guest.FrameError:
				return 0, errdefs.Newf(errdefs.ErrUnavailable, "guest agent: %s", p)
			}
			continue
		}
		switch typ {
		case guest.FrameStdinAck:
			select {
			case <-window:
			default: // more acknowledgements than frames: ignored
			}
		case guest.FrameStdout:
			_, _ = cfg.Stdout.Write(p)
		case guest.FrameStderr:
			_, _ = cfg.Stderr.Write(p)
		case guest.FrameError:
			return 0, errdefs.Newf(errdefs.ErrFailedPrecondition, "%s", p)
		case guest.FrameExit:
			status, err := strconv.Atoi(string(p))
			if err != nil || status < 0 || status > 255 {
				return 0, fmt.Errorf("the guest's agent sent status %q", p)
			}
			return status, nil
		}
	}
}

// sendStdin sends in as FrameStdin frames, each once window has room
// for it.
func sendStdin(out io.Writer, in io.Reader, window chan<- struct{}) error {
	buf := make([]byte, guest.MaxData)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			window <- struct{}{}
			if werr := guest.WriteFrame(out, guest.FrameStdin, buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lockedConn serializes the frames of enter's writers.
type lockedConn struct {
	mu sync.Mutex
	c  net.Conn
}

func (l *lockedConn) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Write(p)
}

// dialState connects to a unix socket of StateDir, relative to the pod
// directory (a unix socket path has 108 bytes).
func dialState(podDir, socket string) (net.Conn, error) {
	d, err := os.Open(filepath.Join(podDir, StateDir)) //nolint:gosec // G304: the pod directory's own state directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Close() }()
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(socket))
	return net.DialTimeout("unix", addr, 2*time.Second)
}
