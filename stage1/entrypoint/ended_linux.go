package entrypoint

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/podroot"
)

// podEndedFIFO is the pod's sdpod.Pod.EndedFIFO: the app helper that
// records the last app's status writes a byte to it once every status is
// written and journald has synced what the apps wrote, and run then ends
// the pod itself (endedWatch) instead of waiting for the pod's systemd to
// shut down.
const podEndedFIFO = "/nscn/state/pod-ended"

// endedWatch reads the pod's ended FIFO. What the pod's systemd still
// does after the last app's helper has powered it off at once is no
// longer needed by anything: it frees its units (closing its inotify
// descriptors, each of which waits for an SRCU grace period), execs
// systemd-shutdown, which sends every process SIGTERM and waits for
// journald to exit. run kills the pod's systemd instead, as stop --force
// does; the kernel kills the rest of the pod's PID namespace with it. A
// FIFO rather than a file and inotify: closing an inotify descriptor
// waits for the same grace period, which would delay run's exit.
type endedWatch struct {
	r, w *os.File
	// C receives once when a byte arrives.
	C chan struct{}
}

// watchEnded makes the FIFO in the pod's root, before the pod starts,
// and reads it. A writer is held open, so that the reader sees no end of
// file while the helper has not opened it.
func watchEnded(ctx context.Context, log *slog.Logger, podDir string) (*endedWatch, error) {
	root, err := podroot.Open(podDir)
	if err != nil {
		return nil, err
	}
	err = root.Mkfifos(podEndedFIFO)
	_ = root.Close()
	if err != nil {
		return nil, err
	}
	p := inStage1(podDir, podEndedFIFO)
	rfd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	wfd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Close(rfd)
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	e := &endedWatch{r: os.NewFile(uintptr(rfd), p), w: os.NewFile(uintptr(wfd), p), C: make(chan struct{}, 1)}
	go func() {
		var b [1]byte
		n, err := e.r.Read(b[:])
		switch {
		case n > 0:
			e.C <- struct{}{}
		case err != nil && !errors.Is(err, os.ErrClosed):
			log.DebugContext(ctx, "read the pod's ended FIFO", "err", err)
		}
	}()
	return e, nil
}

// Close stops the watch.
func (e *endedWatch) Close() {
	_ = e.w.Close()
	_ = e.r.Close()
}

// killEndedPod kills the pod's systemd once every app of the pod has
// ended: see endedWatch. If the pod's systemd cannot be found, its own
// shutdown, which the helper started, ends the pod.
func killEndedPod(ctx context.Context, log *slog.Logger, podDir string) {
	pid, err := podPID(podDir)
	if err != nil {
		log.DebugContext(ctx, "every app has ended, but the pod's systemd is not found: it shuts down by itself", "err", err)
		return
	}
	log.DebugContext(ctx, "every app has ended: kill the pod's systemd (systemd-nspawn reports it terminated by signal KILL)", "pid", pid)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		log.WarnContext(ctx, "kill the pod's systemd; it shuts down by itself", "pid", pid, "err", err)
	}
}
