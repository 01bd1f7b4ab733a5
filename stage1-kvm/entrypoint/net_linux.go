package entrypoint

import (
	"context"
	"log/slog"
	"os/exec"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// podNet is the pod's network as the guest gets it.
type podNet struct {
	// ResolvConf and Hosts are host files for the apps, empty for none.
	ResolvConf, Hosts string
	// Tap and MAC are the guest NIC's tap device in the pod's network
	// namespace, NetNS that namespace; empty with --net=none.
	Tap, MAC, NetNS string
	// Cmdline configures the guest's network (kernel ip= parameter).
	Cmdline []string
}

//nolint:unparam // the CNI networks come next
func setupNetwork(_ context.Context, _ *slog.Logger, _ string, args nspawn.RunArgs, _ *schema.PodManifest) (podNet, error) {
	if args.NetMode == nspawn.NetNone {
		return podNet{}, nil
	}
	return podNet{}, errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm: CNI networks are not implemented yet; use --net=none")
}

func teardownNetwork(context.Context, *slog.Logger, string) error { return nil }

// enterNetNS makes cmd start in the pod's network namespace.
func enterNetNS(string, *exec.Cmd) error { return nil }
