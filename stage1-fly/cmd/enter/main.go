// Command enter is the stage1-fly enter entrypoint
// (coreos.com/rkt/stage1/enter): --pid=PID --appname=NAME -- CMD [ARG…].
// On success it becomes CMD, chrooted into the running app's view, so the
// exit status is CMD's; on failure it exits 254 with one line on stderr.
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
	args, err := abiargs.ParseEnterArgs(os.Args[1:])
	if err == nil {
		err = entrypoint.Enter(context.Background(), entrypoint.EnterConfig{
			Args: args,
			Log:  entrypoint.NewLogger(os.Stderr, entrypoint.DebugFromEnv()),
			Term: os.Getenv("TERM"),
		})
	}
	fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
	os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
