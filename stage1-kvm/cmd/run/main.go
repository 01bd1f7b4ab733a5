// Command run is the stage1-kvm run entrypoint (coreos.com/rkt/stage1/run,
// /nscn/run in the image). stage0 execs it from the pod directory with the
// run argv of the stage1 interface and the pod lock in RKT_LOCK_FD. It
// boots the pod's virtual machine (see package entrypoint) and exits with
// the pod's status, or 254 with one line on stderr when the stage1 itself
// fails. It is also the KVM probe's child and virtiofsd's launcher, both
// re-executions of itself.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/entrypoint"
)

func main() {
	if kvm.ProbeChild() || entrypoint.VirtiofsdChild(os.Args) {
		return
	}
	args, err := sdpod.ParseRunArgs(os.Args[1:])
	if err == nil && !args.PrivateUsers.IsZero() {
		// Declared below interface version 10, so stage0 never passes
		// it; refused by name should that change, never ignored.
		err = errdefs.Newf(errdefs.ErrNotImplemented, "stage1-kvm runs the pod in a virtual machine of its own and cannot provide --%s", stage1abi.FlagPrivateUsers)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	status, err := entrypoint.Run(context.Background(), entrypoint.RunConfig{
		Args:   args,
		Log:    entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv()),
		LockFD: os.Getenv(stage1abi.EnvLockFD),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		// stage0 passes NSCN_TIMELINE{,_BASE} in the environment.
		Timeline: timeline.FromEnv("stage1-kvm"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(status) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
