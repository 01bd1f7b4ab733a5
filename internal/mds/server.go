package mds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/nosecone/nscn/internal/errdefs"
)

const (
	// shutdownTimeout bounds how long Serve waits for requests in flight
	// once its context is done.
	shutdownTimeout = 5 * time.Second
	// dialTimeout bounds the probe of an existing socket, and Running.
	dialTimeout = 2 * time.Second
)

// Server is the metadata service: the registered pods, the registration API
// and the metadata API. Build it with NewServer, then Serve it on the
// listeners of ListenRegistration and ListenMetadata, or on those systemd
// passed (Activated). A Server is safe for concurrent use.
type Server struct {
	log  *slog.Logger
	reg  *registry
	euid uint32
	// port is the TCP port of the first metadata listener Serve was given
	// (0 for none), told to every pod that registers (Registered).
	port atomic.Int32
}

// NewServer returns a service with no pod registered. log receives a line
// per registration, unregistration and refused registration request, and at
// debug level one per metadata request; never a token or a key.
func NewServer(log *slog.Logger) *Server {
	return &Server{log: log, reg: newRegistry(), euid: uint32(os.Geteuid())} //nolint:gosec // a uid fits in 32 bits
}

// allowed says whether a registration API client running as uid may use it:
// root, or the user the service runs as.
func (s *Server) allowed(uid uint32) bool { return uid == 0 || uid == s.euid }

// Listeners are the sockets a Server serves.
type Listeners struct {
	// Registration is the Unix socket of the registration API; nil for
	// none.
	Registration net.Listener
	// Metadata are the TCP listeners of the metadata API.
	Metadata []net.Listener
}

// Close closes every listener, for a caller that does not get to Serve.
func (ls Listeners) Close() {
	if ls.Registration != nil {
		_ = ls.Registration.Close()
	}
	for _, l := range ls.Metadata {
		_ = l.Close()
	}
}

// Serve answers the registration API on ls.Registration and the metadata API
// on each of ls.Metadata until ctx is done, then stops accepting, lets the
// requests in flight finish for up to 5 seconds and returns nil. It closes
// the listeners (which removes a socket file ListenRegistration made). It
// returns early, with the error, if a listener fails.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	if ls.Registration == nil && len(ls.Metadata) == 0 {
		return errdefs.InvalidArgument("metadata service: nothing to listen on")
	}
	if len(ls.Metadata) > 0 {
		if a, ok := ls.Metadata[0].Addr().(*net.TCPAddr); ok {
			s.port.Store(int32(a.Port)) //nolint:gosec // a TCP port fits in 16 bits
		}
	}
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	var servers []*http.Server
	errc := make(chan error, 1+len(ls.Metadata))
	running := 0
	start := func(srv *http.Server, l net.Listener) {
		running++
		go func() { errc <- srv.Serve(l) }()
	}
	if ls.Registration != nil {
		srv := &http.Server{
			Handler:           newRegHandler(s),
			ConnContext:       withPeer,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          errLog,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		servers = append(servers, srv)
		start(srv, ls.Registration)
	}
	if len(ls.Metadata) > 0 {
		srv := &http.Server{
			Handler:           &metadataHandler{reg: s.reg, log: s.log},
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errLog,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		servers = append(servers, srv)
		for _, l := range ls.Metadata {
			start(srv, l)
		}
	}
	for _, l := range ls.Metadata {
		s.log.Info("serving metadata", "address", l.Addr().String())
	}
	if ls.Registration != nil {
		s.log.Info("serving registrations", "socket", ls.Registration.Addr().String())
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
		err = fmt.Errorf("metadata service: %w", err)
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(shut); serr != nil {
			s.log.Warn("metadata service: requests still in flight at shutdown", "err", serr)
			_ = srv.Close()
		}
	}
	for ; running > 0; running-- {
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = fmt.Errorf("metadata service: %w", serr)
		}
	}
	return err
}

// ListenRegistration makes the Unix socket of the registration API at path,
// mode 0600, creating its directory (0755) if needed. A stale socket left by
// a service that died is replaced; a socket some process still answers on is
// errdefs.ErrAlreadyExists, and a file that is not a socket
// errdefs.ErrFailedPrecondition. Closing the listener removes the socket.
//
// Between bind and chmod the socket briefly has the umask's mode; that is
// harmless, since the API checks every peer's uid anyway.
func ListenRegistration(ctx context.Context, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metadata service socket: %w", err)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("metadata service socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("metadata service socket: %w", err)
	}
	return l, nil
}

func removeStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("metadata service socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return errdefs.FailedPrecondition("metadata service socket %s: exists and is not a socket", path)
	}
	d := net.Dialer{Timeout: dialTimeout}
	if c, err := d.DialContext(ctx, "unix", path); err == nil {
		_ = c.Close()
		return errdefs.AlreadyExists("metadata service socket %s: a service is already listening", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("metadata service socket: remove stale: %w", err)
	}
	return nil
}

// ListenMetadata listens for the metadata API on TCP address:port; an empty
// address means every address of the host.
func ListenMetadata(ctx context.Context, address string, port int) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(address, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("metadata service: %w", err)
	}
	return l, nil
}

// Activated returns the sockets systemd (or any manager speaking its
// protocol: LISTEN_PID, LISTEN_FDS, from fd 3) passed to this process: the
// Unix stream socket is the registration API, each TCP socket a metadata
// listener. With no sockets passed, or LISTEN_PID naming another process, it
// returns empty Listeners. It unsets the LISTEN_* variables, so that no child
// inherits them, and may be called once. More than one Unix socket, or a
// socket of another kind, is errdefs.ErrInvalidArgument.
func Activated() (Listeners, error) {
	var ls Listeners
	for i, f := range activation.Files(true) {
		l, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			ls.Close()
			return Listeners{}, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("socket-activated fd %d: %w", 3+i, err))
		}
		switch l.Addr().Network() {
		case "unix":
			if ls.Registration != nil {
				_ = l.Close()
				ls.Close()
				return Listeners{}, errdefs.InvalidArgument("socket-activated fd %d: a second unix socket", 3+i)
			}
			ls.Registration = l
		case "tcp", "tcp4", "tcp6":
			ls.Metadata = append(ls.Metadata, l)
		default:
			network := l.Addr().Network()
			_ = l.Close()
			ls.Close()
			return Listeners{}, errdefs.InvalidArgument("socket-activated fd %d: a %s socket, want unix or tcp", 3+i, network)
		}
	}
	return ls, nil
}
