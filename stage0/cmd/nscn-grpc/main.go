// Command nscn-grpc serves nscn's gRPC services: `nscn cri` and `nscn
// api-service` (the commands nscn hands it) run here. It is nscn's
// command tree with the real service commands in place of nscn's stubs,
// kept apart so that gRPC's start-up cost stays out of every other nscn
// process. Only this main exits.
package main

import (
	"os"

	"github.com/nosecone/nscn/stage0/cli"
	"github.com/nosecone/nscn/stage0/crilog"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == crilog.Command {
		os.Exit(criLogWriter(os.Args[2:])) //nolint:forbidigo // main: only main exits
	}
	os.Exit(cli.Main(os.Args, criCommand(), apiServiceCommand())) //nolint:forbidigo // main: only main exits
}
