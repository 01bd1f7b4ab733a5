// Command stop is the stage1-fly stop entrypoint
// (coreos.com/rkt/stage1/stop): [--force] UUID. It signals run through the pod
// (SIGTERM, or SIGKILL with --force) and exits 0, also when the pod is not
// running; 254 with one line on stderr on failure.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/entrypoint"
)

func main() {
	args, err := abiargs.ParseStopArgs(os.Args[1:])
	if err == nil {
		err = entrypoint.Stop(context.Background(), entrypoint.StopConfig{
			Args: args,
			Log:  entrypoint.NewLogger(os.Stderr, entrypoint.DebugFromEnv()),
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
