// Command gc is the stage1-nspawn gc entrypoint (coreos.com/rkt/stage1/gc,
// /nscn/gc in the image): [--debug] [--local-config=…] UUID, run from the
// directory of an exited pod. It exits 0, or 254 with one line on stderr.
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
	args, err := abiargs.ParseGCArgs(os.Args[1:])
	if err == nil {
		log := entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv())
		err = entrypoint.GC(context.Background(), log, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
