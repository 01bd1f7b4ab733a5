// Command nscn-grpc serves nscn's services: `nscn cri`, `nscn api-service`
// (gRPC) and `nscn metadata-service` (HTTP), the commands nscn hands it, run
// here. It is nscn's command tree with the real service commands in place
// of nscn's stubs, kept apart so that the start-up cost of gRPC and of
// net/http stays out of every other nscn process. Only this main exits.
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
	os.Exit(cli.Main(os.Args, criCommand(), apiServiceCommand(), metadataServiceCommand())) //nolint:forbidigo // main: only main exits
}
