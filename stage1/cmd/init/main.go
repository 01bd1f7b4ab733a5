// Command init is the stage1-nspawn run entrypoint
// (coreos.com/rkt/stage1/run, /nscn/init in the image). stage0 execs it
// from the pod directory with the run argv of the stage1 interface and the
// pod lock in RKT_LOCK_FD. It boots the pod (see package entrypoint) and
// exits with the pod's status, or 254 with one line on stderr when the
// stage1 itself fails.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/entrypoint"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == entrypoint.SystemdCallArg {
		// run's child that starts a mutable pod's journald once the
		// pod is ready, from inside the pod's PID namespace.
		os.Exit(entrypoint.PodSystemdCall(context.Background())) //nolint:forbidigo // main: the child's exit status
	}
	args, err := sdpod.ParseRunArgs(os.Args[1:])
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
		// The stage1's own env: stage0 passes NSCN_TIMELINE{,_BASE}.
		Timeline: timeline.FromEnv("stage1"),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(status) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
