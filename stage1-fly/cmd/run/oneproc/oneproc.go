// Package oneproc sets GOMAXPROCS to 1 while the program's packages are
// still being initialised. It is imported, for that effect only, by the
// stage1-fly run entrypoint, and by nothing else: it has no API.
//
// /fly/run only waits (for its pod thread, the app, signals), so one P is
// all it uses; with more, idle threads spin looking for work, which costs
// a pod start CPU time. Calling runtime.GOMAXPROCS(1) first thing in main
// is too late: the package initialisation before it (appc's and semver's
// patterns, json, slog) has allocated on both Ps, and stopping the second
// one then flushes its cached spans of every size class to the central
// lists, each list's first push a fresh page: about a fifth of the run
// binary's page faults, 0.2 to 0.3 ms of CPU per pod start
// (Documentation/performance.md). This package imports only the runtime
// and its path sorts before the packages that allocate, so the Go linker
// initialises it among the very first, before any of them.
//
// It runs in stage1, on the host, with whatever privileges /fly/run has;
// it needs none of its own.
package oneproc

import "runtime"

// previous is the GOMAXPROCS the runtime started with. The assignment is
// the package's whole purpose: a variable initialiser, not an init
// function, runs at the same point of the initialisation order.
var previous = runtime.GOMAXPROCS(1)

// Previous reports the GOMAXPROCS the runtime chose before this package
// set it to 1 (the number of CPUs, or the GOMAXPROCS environment
// variable): for the test, and for a debug log that wants it.
func Previous() int { return previous }
