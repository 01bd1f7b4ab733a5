// Command nscn-fetch runs what needs nscn's fetch side: nscn fetch, trust,
// config and app add, and nscn run and prepare of an image the store does
// not hold. nscn (built with the nscn_nofetch tag) execs it with its own
// command line; this is the same command tree built whole, with the
// fetcher, the OpenPGP verifier and the registry client, kept apart so that
// their package initialisation stays out of every other nscn process
// (Documentation/performance.md). Only this main exits.
package main

import (
	"os"

	"github.com/nosecone/nscn/stage0/cli"
)

func main() {
	os.Exit(cli.Main(os.Args)) //nolint:forbidigo // main: only main exits
}
