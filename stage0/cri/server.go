package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/version"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/stage0/fetch"
	"github.com/nosecone/nscn/store"
)

// RuntimeName is what Version reports as the runtime's name.
const RuntimeName = "nscn"

// Options configure a Server.
type Options struct {
	// DataDir is nscn's data directory (--dir): its store and pods.
	DataDir string
	// Store is the data directory's image store, open.
	Store *store.Store
	// NewFetcher returns a fetcher for one pull, configured from the
	// global flags and the configuration directories (credentials,
	// registries.d); the server sets its pull policy.
	NewFetcher func() *fetch.Fetcher
	// Log receives one line per change (pull, removal) and errors.
	Log *slog.Logger
	// NscnArgs runs nscn with the server's global flags (cli.Service.Argv):
	// sandboxes are nscn app sandbox processes, stops and removals nscn
	// stop and rm, exec nscn app exec.
	NscnArgs []string
	// Apps configures the changes of a sandbox's apps (containers).
	Apps apps.Config
	// LogWriterExe is the binary that runs the containers' log writers
	// (crilog.Command): the server's own (os.Executable) when empty.
	LogWriterExe string
	// LogControlDir holds the log writers' control sockets:
	// DefaultLogControlDir when empty.
	LogControlDir string
}

// Server implements the CRI's runtime and image services. The runtime
// methods not implemented yet answer Unimplemented, which the kubelet and
// critest report as such.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	dataDir    string
	store      *store.Store
	newFetcher func() *fetch.Fetcher
	log        *slog.Logger
	nscnArgs   []string
	apps       apps.Config

	logWriterExe  string
	logControlDir string
	// stream is the streaming server (StartStreaming), nil before.
	stream streaming.Server
}

// New returns a server over the options' data directory.
func New(o Options) (*Server, error) {
	if o.DataDir == "" || o.Store == nil || o.NewFetcher == nil || len(o.NscnArgs) == 0 {
		return nil, errors.New("cri: DataDir, Store, NewFetcher and NscnArgs are required")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		dataDir: o.DataDir, store: o.Store, newFetcher: o.NewFetcher, log: log, nscnArgs: o.NscnArgs, apps: o.Apps,
		logWriterExe: o.LogWriterExe, logControlDir: o.LogControlDir,
	}
	if s.logWriterExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("cri: the server's binary: %w", err)
		}
		s.logWriterExe = exe
	}
	if s.logControlDir == "" {
		s.logControlDir = DefaultLogControlDir
	}
	return s, nil
}

// Register adds the server's services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}

// Version reports the runtime and the CRI version it speaks.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       RuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: "v1",
	}, nil
}

// Status reports the runtime and its network ready: both are there when
// the server answers (the store opened; CNI is set up per pod).
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}, RuntimeHandlers: runtimeHandlers()}
	if req.GetVerbose() {
		resp.Info = map[string]string{"dataDir": s.dataDir}
	}
	return resp, nil
}

// toStatus turns an nscn error into a gRPC status with the matching code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, errdefs.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, errdefs.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		code = codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, errdefs.ErrNotImplemented):
		code = codes.Unimplemented
	case errors.Is(err, errdefs.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, errdefs.ErrPermissionDenied):
		code = codes.PermissionDenied
	}
	return status.Error(code, err.Error())
}

// Listen opens the unix socket addr names (unix:///path or a path): its
// directory is created 0700, a stale socket of a server that is gone is
// replaced, and the socket is 0600, since whoever can talk to it can run
// anything as root. A socket a live server answers on is refused.
func Listen(addr string) (net.Listener, string, error) {
	path := addr
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "unix" || u.Path == "" {
			return nil, "", errdefs.InvalidArgument("listen address %q: want unix:///PATH or a path", addr)
		}
		path = u.Path
	}
	if !filepath.IsAbs(path) {
		return nil, "", errdefs.InvalidArgument("listen address %q: the socket path must be absolute", addr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("socket directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, "", errdefs.FailedPrecondition("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, "", errdefs.FailedPrecondition("another server answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, "", fmt.Errorf("remove stale socket: %w", err)
		}
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, path, nil
}

// appsConfig is the apps.Config of one change.
func (s *Server) appsConfig() apps.Config { return s.apps }
