package cli

import "fmt"

// ExitStatus is returned by commands whose exit status is an app's own (nscn
// run, status --wait): main exits with it and prints nothing.
type ExitStatus int

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// ExitStatusErr is a failure already reported on stderr, for commands that
// go on after a failure and exit non-zero at the end.
type ExitStatusErr struct {
	Status int
	Err    error
}

func (e ExitStatusErr) Error() string { return e.Err.Error() }
func (e ExitStatusErr) Unwrap() error { return e.Err }
