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

// execKillGrace is how long a timed-out ExecSync's command has between
// SIGTERM and SIGKILL.
const execKillGrace = 5 * time.Second

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
	// but a group is the host's to signal), so the whole group is
	// signalled. SIGTERM first: the stage1's enter passes it on and reaps
	// the command, which then leaves no zombie in the app (its parent's
	// death would hand it to the host's init, which the next ExecSync
	// could see before that init reaps it); SIGKILL for what is left
	// after execKillGrace. The group cannot be another's then: nscn, its
	// leader, is not reaped before Run returns, which stops the timer.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var kill *time.Timer
	cmd.Cancel = func() error {
		pg := -cmd.Process.Pid
		kill = time.AfterFunc(execKillGrace, func() { _ = syscall.Kill(pg, syscall.SIGKILL) })
		return syscall.Kill(pg, syscall.SIGTERM)
	}
	cmd.WaitDelay = execKillGrace + 2*time.Second
	err = cmd.Run()
	if kill != nil {
		kill.Stop()
	}
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
