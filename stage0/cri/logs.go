package cri

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/apps"
	"github.com/nosecone/nscn/stage0/crilog"
)

// The container logs (Documentation/cri.md, "Logs"): a container with a
// LogPath gets a log writer (stage0/crilog) when it starts, a process of
// its own that copies the app's output FIFOs into the file and outlives
// the server; the server talks to it over its control socket.

// DefaultLogControlDir holds the log writers' control sockets, one per
// container, named by the container ID.
const DefaultLogControlDir = "/run/nscn/cri-log"

// logWaitTimeout bounds how long ContainerStatus waits for an exited
// container's log to be complete.
const logWaitTimeout = 5 * time.Second

func (s *Server) logControl(c *container) string {
	return filepath.Join(s.logControlDir, c.meta.ID+".sock")
}

// startLogWriter starts the log writer of c, before its app starts: the
// app helper copies the output to the FIFOs only when they have a reader
// as the app starts. A stage1 without the FIFOs (the ABI makes them
// optional) gets no log file, with a warning; the output is in the pod's
// journal or logs/ all the same.
func (s *Server) startLogWriter(ctx context.Context, c *container) (*os.Process, error) {
	cfg := crilog.Config{
		PodDir:     c.sb.pod.Path,
		StdoutFIFO: stage1abi.AppOutputFIFO(c.app, stage1abi.LogStreamStdout),
		StderrFIFO: stage1abi.AppOutputFIFO(c.app, stage1abi.LogStreamStderr),
		Control:    s.logControl(c),
	}
	if c.meta.LogPath != "" && c.sb.meta.LogDirectory != "" {
		rel, err := filepath.Rel(c.sb.meta.LogDirectory, c.meta.LogPath)
		if err != nil {
			return nil, errdefs.InvalidArgument("log path %s is not in the log directory %s", c.meta.LogPath, c.sb.meta.LogDirectory)
		}
		cfg.LogDir, cfg.LogPath = c.sb.meta.LogDirectory, rel
	}
	if c.meta.Stdin {
		// A stage1 that honours stage1abi.AnnotationAppStdin made it.
		if _, err := os.Lstat(filepath.Join(cfg.PodDir, stage1abi.AppInputFIFO(c.app))); err == nil {
			cfg.StdinFIFO = stage1abi.AppInputFIFO(c.app)
			cfg.StdinOnce = c.meta.StdinOnce
		} else {
			s.log.WarnContext(ctx, "the pod's stage1 gave the app no input FIFO: no stdin", "container", c.meta.ID)
		}
	}
	if c.meta.TTY {
		// A stage1 of stage1abi.InterfaceVersionAppTTY made it
		// (stage0/apps refuses the annotation for an older one).
		cfg.ResizeFIFO = stage1abi.AppResizeFIFO(c.app)
	}
	if cfg.LogPath == "" && cfg.StdinFIFO == "" && cfg.ResizeFIFO == "" {
		return nil, nil
	}
	if _, err := os.Lstat(filepath.Join(cfg.PodDir, cfg.StdoutFIFO)); errors.Is(err, fs.ErrNotExist) {
		s.log.WarnContext(ctx, "the pod's stage1 has no app output FIFOs: no container log", "container", c.meta.ID)
		return nil, nil
	}
	p, err := crilog.Start(ctx, s.logWriterExe, cfg, os.Stderr)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrFailedPrecondition, err)
	}
	return p, nil
}

// waitLogs waits, for a while, until the log writer of the exited
// container c has written all of its output; a writer that is gone has.
func (s *Server) waitLogs(ctx context.Context, c *container) {
	if c.meta.LogPath == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, logWaitTimeout)
	defer cancel()
	if err := crilog.Request(ctx, s.logControl(c), crilog.ReqWait); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrNotExist) {
		s.log.DebugContext(ctx, "wait for the container log", "container", c.meta.ID, "err", err)
	}
}

// ReopenContainerLog has the log writer of a running container open its
// LogPath anew, after the kubelet renamed the file (log rotation).
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := apps.StatusOf(ctx, s.dataDir, c.sb.pod.UUID, c.app)
	if err != nil {
		return nil, toStatus(err)
	}
	if st.State != apps.Running {
		return nil, toStatus(errdefs.FailedPrecondition("container %s is not running", c.meta.ID))
	}
	if c.meta.LogPath == "" {
		return nil, toStatus(errdefs.FailedPrecondition("container %s has no log path", c.meta.ID))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := crilog.Request(ctx, s.logControl(c), crilog.ReqReopen); err != nil {
		return nil, toStatus(errdefs.With(errdefs.ErrFailedPrecondition, err))
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
