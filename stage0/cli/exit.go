package cli

import "fmt"

// ExitStatus is returned by commands whose exit status is an app's own (nscn
// run, status --wait): main exits with it and prints nothing.
type ExitStatus int

func (e ExitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
