package cri

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
)

// ExecSync runs a command in a running container, confined as the
// container is (nscn app exec), and returns its output and exit status.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := s.mustContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	if len(req.GetCmd()) == 0 {
		return nil, toStatus(errdefs.InvalidArgument("exec: no command"))
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	args := append(append(append([]string(nil), s.nscnArgs[1:]...), "app", "exec", c.sb.pod.UUID, "--app="+c.app, "--"), req.GetCmd()...)
	cmd := exec.CommandContext(ctx, s.nscnArgs[0], args...) //nolint:gosec // G204: nscn itself, with the client's command for the container
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// At the deadline the command goes, not only nscn: the entered
	// process stays in nscn's process group (in the pod's PID namespace,
	// but a group is the host's to signal), so the whole group is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, toStatus(ctx.Err())
	case errors.As(err, &ee):
		return &runtimeapi.ExecSyncResponse{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: int32(ee.ExitCode())}, nil //nolint:gosec // G115: an exit status
	case err != nil:
		return nil, toStatus(err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: out.Bytes(), Stderr: errb.Bytes()}, nil
}
