// Command enter is the stage1-nspawn enter entrypoint
// (coreos.com/rkt/stage1/enter, /nscn/enter in the image):
// --pid=PID --appname=NAME -- CMD [ARG…], run from the pod directory. It
// exits with CMD's status, or 254 with one line on stderr. Started as
// "enter --nscn-enter-helper" it is enter's own helper (see
// entrypoint.Enter), which becomes CMD.
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
	if len(os.Args) == 2 && os.Args[1] == entrypoint.EnterHelperArg {
		err := entrypoint.EnterHelper(context.Background(), os.Stderr)
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(fmt.Errorf("enter: %w", err)))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	args, err := abiargs.ParseEnterArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	log := entrypoint.NewLogger(os.Stderr, entrypoint.DebugFromEnv())
	status, err := entrypoint.Enter(context.Background(), log, args, os.Getenv("TERM"))
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(status) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
