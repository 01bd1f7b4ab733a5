// Package timeline prints where a run's time goes: one line per phase, on
// stderr, from every process of the run (stage0, the stage1 entrypoints and
// the per-app helpers), each line's offset counted from the same instant.
//
// It is off unless NSCN_TIMELINE=1 is in the environment (nscn --debug
// sets it too). The processes of one run share their base instant through
// NSCN_TIMELINE_BASE, a CLOCK_MONOTONIC reading in nanoseconds: the first
// process of a run (stage0) takes it at its start and passes it on with
// Env; a process that is handed a base uses it, so offsets from different
// processes line up on one axis. CLOCK_MONOTONIC is shared by every
// process on the host: nscn creates no time namespace.
//
// A line reads
//
//	nscn-timeline: +12.345ms stage0 pod-dir-written
//
// and Parse reads such lines back (the bench prints them per figure).
// Marks are written straight to stderr, one write per line, so they
// survive an exec that follows them and interleave whole with other
// processes' lines.
package timeline
