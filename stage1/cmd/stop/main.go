// Command stop is the stage1-nspawn stop entrypoint
// (coreos.com/rkt/stage1/stop, /nscn/stop in the image): [--force] UUID,
// run from the pod directory. It exits 0, or 254 with one line on stderr.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1/entrypoint"
)

func main() {
	args, err := abiargs.ParseStopArgs(os.Args[1:])
	if err == nil {
		err = entrypoint.Stop(context.Background(), entrypoint.NewLogger(os.Stderr, entrypoint.DebugFromEnv()), args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
