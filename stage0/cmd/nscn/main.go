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
	"github.com/nosecone/nscn/internal/safetext"
	"github.com/nosecone/nscn/stage0/cli"
)

// Exit codes of the runtime itself. App statuses pass through untouched (see
// cli.ExitStatus); 254 marks the runtime's own failure as rkt did.
const (
	exitRuntime = 254
	exitUsage   = 2
)

// exitCode maps an error to the process exit status and says whether the
// error still needs printing.
func exitCode(err error) (code int, report bool) {
	var st cli.ExitStatus
	var reported cli.ExitStatusErr
	switch {
	case err == nil:
		return 0, false
	case errors.As(err, &st):
		return int(st), false
	case errors.As(err, &reported):
		return reported.Status, false
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return exitUsage, true
	default:
		return exitRuntime, true
	}
}

// reportLine is how main reports err: one line, whatever the error
// quotes (an image's label, a flag's value) escaped by safetext.
func reportLine(err error) string {
	return "nscn: " + safetext.Escape(err.Error())
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := cli.NewApp(os.Stdin, os.Stdout, os.Stderr)
	err := app.RunContext(ctx, cli.GlobalFlagsFirst(app, os.Args))
	stop()
	code, report := exitCode(err)
	if report {
		fmt.Fprintln(os.Stderr, reportLine(err))
	}
	os.Exit(code) //nolint:forbidigo // main: only main exits
}
