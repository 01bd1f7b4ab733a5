// Command standin is the one program of critest's stand-in images
// (tests/cri) that busybox cannot be. It does what its name says:
//
//   - as /pause in pause:3.9, it is a pod sandbox's first process: it waits
//     for SIGINT or SIGTERM and exits 0, and reaps the orphans that a PID
//     namespace's first process inherits;
//   - as /usr/local/bin/nnp, installed setuid root in nonewprivs:1.3, it
//     prints "Effective uid: N", which critest's no-new-privileges specs
//     read from the container's log (0 when the setuid bit took effect).
//
// It is static (CGO_ENABLED=0) and needs nothing from the image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "pause":
		pause()
	case "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	default:
		fmt.Fprintf(os.Stderr, "standin: run as pause or nnp, not %s\n", os.Args[0])
		os.Exit(2) //nolint:forbidigo // main: a wrong name is a usage error
	}
}

func pause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
	}
}
