// Command app-start is the stage1-nspawn app/start entrypoint
// (coreos.com/rkt/stage1/app/start, /nscn/app-start in the image):
// [--debug] --uuid=UUID --app=NAME, run from the pod directory of a
// running mutable pod, with RKT_STAGE1_ENTERPID naming the pod's pid. It exits 0,
// or 254 with one line on stderr. See package entrypoint (apps_linux.go).
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
	if len(os.Args) == 2 && os.Args[1] == entrypoint.SystemdCallArg {
		// The child that speaks to the pod's systemd from inside its
		// PID namespace.
		os.Exit(entrypoint.PodSystemdCall(context.Background())) //nolint:forbidigo // main
	}
	args, err := abiargs.ParseAppArgs(os.Args[1:])
	if err == nil {
		err = entrypoint.AppStart(context.Background(), entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv()), args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
