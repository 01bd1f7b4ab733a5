// Package podlog writes and reads the app log files of a pod
// (stage1abi.AppLogFile): one record per line in the CRI logging format,
// "<RFC 3339 time> <stdout|stderr> <F|P> <content>", as
// Documentation/stage1-abi.md describes it.
//
// File is the writing side, used by stage1-nspawn's run while it relays
// the apps' output; Reader, Merge and Printer are the reading side, used
// by "nscn logs". Parse is the one parser of a record.
//
// It does no I/O of its own beyond the io.Writer and io.Reader it is
// given, needs no privileges, and runs in stage0 and stage1.
package podlog
