package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// mdsRegister values: whether run and run-prepared register the pod with
// the metadata service (--mds-register).
const (
	mdsRegisterAuto = ""      // when the service is running
	mdsRegisterYes  = "true"  // always; a service that is not running is an error
	mdsRegisterNo   = "false" // never
)

// mdsOptions are run's metadata service flags.
type mdsOptions struct {
	Register string // mdsRegisterAuto, mdsRegisterYes or mdsRegisterNo
	Socket   string // the service's registration socket
}

// socket returns the registration socket o names, or the default.
func (o mdsOptions) socket() string {
	if o.Socket == "" {
		return mdsclient.DefaultSocket
	}
	return o.Socket
}

// checkRequired fails when o asks for a registration (--mds-register=true)
// and no metadata service answers, so that run can refuse before it
// fetches or prepares anything. Other values pass.
func (o mdsOptions) checkRequired() error {
	switch o.Register {
	case mdsRegisterAuto, mdsRegisterNo:
		return nil
	case mdsRegisterYes:
		if !mdsclient.Running(o.socket()) {
			return errdefs.Newf(errdefs.ErrUnavailable, "--mds-register: no metadata service answers on %s (start \"nscn metadata-service\" or run with --mds-register=false)", o.socket())
		}
		return nil
	default:
		return usageErrorf("--mds-register takes true or false, not %q", o.Register)
	}
}

// mdsRegistration is a pod stage0 registered with the metadata service.
type mdsRegistration struct {
	Token string
	Port  int
}

// registerWithMDS registers pod p with the metadata service as o asks,
// before its stage1 runs: it makes the pod's token, registers the pod's
// manifests from its directory, and records the socket in the pod
// directory (stage1abi.MDSSocketFile) for gc and rm. It returns the zero
// mdsRegistration when the pod is not to be registered. With
// --mds-register=true, a service that is not running is
// errdefs.ErrUnavailable; the pod is then left as it was.
//
// Stage0 registers, not stage1: it knows the socket, and a failure can
// still stop the pod before anything of it runs. The pod is registered with
// a token only, no addresses; the token is its identity whatever its
// network (Documentation/metadata-service.md).
func registerWithMDS(ctx context.Context, g *Globals, p *pod.Pod, o mdsOptions) (mdsRegistration, error) {
	var r mdsRegistration
	socket := o.socket()
	switch o.Register {
	case mdsRegisterNo:
		return r, nil
	case mdsRegisterAuto:
		if !mdsclient.Running(socket) {
			g.Log.Debug("no metadata service, the pod is not registered", "pod", p.UUID, "socket", socket)
			return r, nil
		}
	default:
		if err := o.checkRequired(); err != nil {
			return r, err
		}
	}
	reg, err := mdsclient.FromPodDir(p.Path, p.UUID)
	if err != nil {
		return r, err
	}
	if reg.Token, err = mdsclient.NewToken(); err != nil {
		return r, err
	}
	ans, err := mdsclient.Register(ctx, socket, reg)
	if err != nil {
		return r, err
	}
	if err := atomicfile.Write(p.Path, stage1abi.MDSSocketFile, []byte(socket+"\n")); err != nil {
		unregisterFromMDS(context.WithoutCancel(ctx), g, p.UUID, socket)
		return r, fmt.Errorf("record the metadata service of pod %s: %w", p.UUID, err)
	}
	g.Log.Debug("registered the pod with the metadata service", "pod", p.UUID, "socket", socket, "port", ans.MetadataPort)
	return mdsRegistration{Token: reg.Token, Port: ans.MetadataPort}, nil
}

// unregisterFromMDS removes pod podUUID from the service on socket. A pod
// the service no longer knows, or a service that is gone (it forgot every
// pod), is not a failure; anything else is logged, since the pod is going
// away anyway.
func unregisterFromMDS(ctx context.Context, g *Globals, podUUID, socket string) {
	err := mdsclient.Unregister(ctx, socket, podUUID)
	switch {
	case err == nil:
		g.Log.Debug("unregistered the pod from the metadata service", "pod", podUUID)
	case errors.Is(err, errdefs.ErrNotFound), errors.Is(err, errdefs.ErrUnavailable):
		g.Log.Debug("the metadata service does not have the pod", "pod", podUUID, "reason", err)
	default:
		g.Log.Warn("unregister the pod from the metadata service", "pod", podUUID, "err", err)
	}
}

// unregisterPod unregisters a pod that is being removed, if stage0
// registered it (stage1abi.MDSSocketFile).
func unregisterPod(ctx context.Context, g *Globals, p *pod.Pod) {
	b, err := os.ReadFile(filepath.Join(p.Path, stage1abi.MDSSocketFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.Log.Warn("read the pod's metadata service socket", "pod", p.UUID, "err", err)
		}
		return
	}
	socket := strings.TrimSpace(string(b))
	if socket == "" {
		return
	}
	unregisterFromMDS(ctx, g, p.UUID, socket)
}

// forgetMDS undoes registerWithMDS for a pod whose stage1 could not be
// started.
func forgetMDS(ctx context.Context, g *Globals, p *pod.Pod) {
	unregisterPod(ctx, g, p)
	if err := os.Remove(filepath.Join(p.Path, stage1abi.MDSSocketFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		g.Log.Warn("remove the pod's metadata service record", "pod", p.UUID, "err", err)
	}
}

// redactMDSToken returns the stage1 argv with the metadata service token
// hidden, for logs: the token is the pod's credential.
func redactMDSToken(args []string) []string {
	out := make([]string, len(args))
	prefix := "--" + stage1abi.FlagMDSToken + "="
	for i, a := range args {
		if strings.HasPrefix(a, prefix) {
			a = prefix + "(redacted)"
		}
		out[i] = a
	}
	return out
}

// refuseMDSFlags refuses the metadata service flags for prepare: a pod is
// registered when it runs, by run-prepared.
func refuseMDSFlags(ra *runArgs) error {
	for _, f := range []string{"mds-register", "mds-socket"} {
		if ra.flag(f) != "" {
			return usageErrorf("--%s applies when the pod runs: give it to run-prepared, not prepare", f)
		}
	}
	return nil
}
