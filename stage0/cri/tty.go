package cri

import (
	"context"
	"time"

	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage0/crilog"
)

// A container's terminal (Documentation/cri.md, "Streaming"): a container
// created with tty carries stage1abi.AnnotationAppTTY, for which the
// stage1's app helper allocates a pseudo-terminal in the pod and holds
// its master; the container's log writer carries the client's resizes
// to it (crilog.Resize).

// refuseTTY refuses a terminal for a container of sandbox sb where no
// stage1 gives one: on the kvm handler, whose guest has no way to the
// host's FIFOs, and in the host's PID namespace, where run's spawner
// starts the app and the terminal's session would have to be made by it.
func refuseTTY(sb *sandbox, tty bool) error {
	switch {
	case tty && sb.meta.RuntimeHandler == "kvm":
		return errdefs.Newf(errdefs.ErrNotImplemented, "a container's tty on the kvm runtime handler: stage1-kvm gives an added app no terminal")
	case tty && sb.meta.HostPID:
		return errdefs.Newf(errdefs.ErrNotImplemented, "a container's tty in a sandbox in the host's PID namespace: stage1-nspawn gives such an app no terminal")
	}
	return nil
}

// forwardResizes passes each size the client sends to the log writer at
// control, until resize is closed or ctx ends.
func (s *Server) forwardResizes(ctx context.Context, control string, resize <-chan remotecommandserver.TerminalSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-resize:
			if !ok {
				return
			}
			if sz.Height == 0 || sz.Width == 0 {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := crilog.Resize(rctx, control, sz.Height, sz.Width); err != nil {
				s.log.DebugContext(ctx, "resize the container's terminal", "err", err)
			}
			cancel()
		}
	}
}
