// Command run is the stage1-fly run entrypoint (coreos.com/rkt/stage1/run).
// stage0 execs it from the pod directory with the run argv of the stage1
// interface and the pod lock in RKT_LOCK_FD; it exits with the app's
// status, or 254 with one line on stderr when fly itself fails.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/entrypoint"

	// One P from the start of package initialisation: run only waits
	// (for its pod thread, the app, signals). The package's doc says why
	// this cannot wait for main.
	_ "github.com/nosecone/nscn/stage1-fly/cmd/run/oneproc"
)

func main() {
	ctx := context.Background()
	args, err := abiargs.ParseRunArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	status, err := entrypoint.Run(ctx, entrypoint.RunConfig{
		Args:   args,
		Log:    entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv()),
		LockFD: os.Getenv(stage1abi.EnvLockFD),
		Term:   os.Getenv("TERM"),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(status) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
