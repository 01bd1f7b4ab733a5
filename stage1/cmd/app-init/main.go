// Command app-init is pid 1 of each app's PID namespace in stage1-nspawn
// (/nscn/app-init in the image; the app helper starts it, see
// stage1/entrypoint/appns_linux.go). It makes itself non-dumpable, so that
// the app cannot reach its root through /proc/1/root, drops every signal
// and reaps the namespace's orphans until the helper kills it.
//
// It is a binary of its own, importing almost nothing, because it starts
// beside the app on every app start: its Go runtime's start competes with
// the app's for the CPU, and the app helper's (which links the whole
// stage1) costs several times more.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stage1-nspawn: app-init:", err)
		os.Exit(254) //nolint:forbidigo // main: stage1abi.ExitRuntime, which this binary does not link
	}
}

// run returns only on failure.
func run() error {
	// First: until then a signal the Go runtime handles (systemd's
	// SIGTERM on stop) ends the init, and with it the app's namespace.
	// A PID namespace's init gets no signal it has no handler for, so
	// none that is caught and dropped.
	c := make(chan os.Signal, 16)
	signal.Notify(c)
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return &os.SyscallError{Syscall: "prctl(PR_SET_DUMPABLE)", Err: err}
	}
	for sig := range c {
		if sig == unix.SIGCHLD {
			reap()
		}
	}
	return nil
}

// reap waits for every child that has ended, without blocking.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
