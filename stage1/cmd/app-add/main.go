// Command app-add is the stage1-nspawn app/add entrypoint
// (coreos.com/rkt/stage1/app/add, /nscn/app-add in the image):
// [--debug] [--disable-…] --uuid=UUID --app=NAME, run from the pod directory of a
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
		err = entrypoint.AppAdd(context.Background(), entrypoint.NewLogger(os.Stderr, args.Debug || entrypoint.DebugFromEnv()), args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, entrypoint.ErrorLine(err))
		os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // main: the exit status is the stage1 ABI's
	}
}
