// Command gc is the stage1-fly gc entrypoint (coreos.com/rkt/stage1/gc):
// [--debug] [--local-config=…] UUID, run from the directory of an exited
// pod. It removes what fly left there and exits 0, or 254 with one line on
// stderr.
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
	args, err := abiargs.ParseGCArgs(os.Args[1:])
	if err == nil {
		err = entrypoint.GC(context.Background(), entrypoint.GCConfig{
			Args: args,
			Log:  entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv()),
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
