package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/safetext"
)

// Exit codes of the runtime itself. App statuses pass through untouched (see
// ExitStatus); 254 marks the runtime's own failure as rkt did.
const (
	exitRuntime = 254
	exitUsage   = 2
)

// Main runs the command line args (os.Args) with the process's streams,
// cancelled by SIGINT and SIGTERM, and returns the exit status. services
// replace the stubs of the same name (ServiceCommands): nscn passes none,
// nscn-grpc its gRPC services.
func Main(args []string, services ...*cli.Command) int {
	return run(os.Stdin, os.Stdout, os.Stderr, args, services...)
}

func run(stdin io.Reader, stdout, stderr io.Writer, args []string, services ...*cli.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := appFor(stdin, stdout, stderr, args)
	replaceServices(app, services)
	err := app.RunContext(ctx, GlobalFlagsFirst(app, args))
	code, report := exitCode(err)
	if report {
		_, _ = fmt.Fprintln(stderr, reportLine(err))
	}
	return code
}

// exitCode maps an error to the process exit status and says whether the
// error still needs printing.
func exitCode(err error) (code int, report bool) {
	var st ExitStatus
	var reported ExitStatusErr
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

// reportLine is how an error is reported: one line, whatever the error
// quotes (an image's label, a flag's value) escaped by safetext.
func reportLine(err error) string {
	return "nscn: " + safetext.Escape(err.Error())
}
