// Command nscn is the Nose Cone stage0: it builds the command tree, runs it,
// and maps the class of any error to an exit code. Only this main exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage0/cli"
)

// Exit codes of the runtime itself. App statuses pass through untouched (see
// cli.ExitStatus); 254 marks the runtime's own failure as rkt did.
const (
	exitRuntime = 254
	exitUsage   = 2
)

// exitCode maps an error class to the process exit status.
func exitCode(err error) int {
	var st cli.ExitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return int(st)
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return exitUsage
	default:
		return exitRuntime
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewApp(os.Stdin, os.Stdout, os.Stderr).RunContext(ctx, os.Args)
	stop()
	var st cli.ExitStatus
	if err != nil && !errors.As(err, &st) {
		fmt.Fprintf(os.Stderr, "nscn: %v\n", err)
	}
	os.Exit(exitCode(err))
}
