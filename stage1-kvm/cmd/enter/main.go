// Command enter is the stage1-kvm enter entrypoint
// (coreos.com/rkt/stage1/enter, /nscn/enter in the image):
// --pid=PID --appname=NAME -- CMD [ARG…], run from the pod directory,
// PID being the pod's qemu. The guest's agent runs CMD in the app; enter
// relays its stdin, stdout and stderr and exits with its status, or 254
// with one line on stderr.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/entrypoint"
)

func main() {
	args, err := abiargs.ParseEnterArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	status, err := entrypoint.Enter(context.Background(), entrypoint.EnterConfig{
		Args: args, Log: entrypoint.NewLogger(os.Stderr, entrypoint.DebugFromEnv()), Term: os.Getenv("TERM"),
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
	os.Exit(status) //nolint:forbidigo // main: the exit status is the stage1 ABI's
}
