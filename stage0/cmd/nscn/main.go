// Command nscn is the Nose Cone stage0: it builds the command tree, runs it,
// and maps the class of any error to an exit code (cli.Main). Only this
// main exits. The gRPC services (nscn cri, nscn api-service) are stubs
// here that exec nscn-grpc, so that no nscn run pays for linking them.
package main

import (
	"os"

	"github.com/nosecone/nscn/stage0/cli"
)

func main() {
	os.Exit(cli.Main(os.Args)) //nolint:forbidigo // main: only main exits
}
