package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nosecone/nscn/stage0/crilog"
)

// criLogWriter runs a container's log writer (stage0/crilog), the
// process `nscn cri` starts as `nscn-grpc cri-log-writer ...` for each
// container with a log path; it returns the exit status.
func criLogWriter(args []string) int {
	// Its stderr may be the server's, gone after a restart: a write
	// there must fail, not kill the writer.
	signal.Ignore(syscall.SIGPIPE)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "cri-log-writer")
	if err := crilog.Main(context.Background(), args, log); err != nil {
		log.Error("log writer", "err", err)
		return 1
	}
	return 0
}
