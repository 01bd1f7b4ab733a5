package entrypoint

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/podroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// The apps' standard I/O, seen from run:
//
//	app ─pipes─▶ app helper ─▶ pod's journal (journal_linux.go)
//	                        ─▶ /nscn/io/APP/stdout ──relay──▶ run's stdout
//	                        ─▶ /nscn/io/APP/stderr ──relay──▶ run's stderr
//
// With --interactive and a stdin that is not a terminal, run also copies
// its stdin into /nscn/io/APP/stdin, which the app helper opens as the
// app's fd 0. With --interactive on a terminal, none of this carries the
// app's I/O: systemd-nspawn's console does (nspawn.ConsoleInteractive) and
// nothing is recorded. The journal replaces the log files of
// stage1abi.LogsDir, which this flavor no longer writes.

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// makeAppFIFOs creates the FIFOs of an app's I/O in the stage1 rootfs.
func makeAppFIFOs(podDir string, app sdpod.App) error {
	name := app.Spec.Name
	paths := []string{sdpod.AppStdoutFIFO(name), sdpod.AppStderrFIFO(name)}
	if app.Stdin != "" {
		paths = append(paths, app.Stdin)
	}
	if app.TTY {
		paths = append(paths, sdpod.AppResizeFIFO(name))
	}
	// In the pod's root: app/add makes them while the pod runs.
	root, err := podroot.Open(podDir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	return root.Mkfifos(paths...)
}

// podIO relays the apps' FIFOs to run's stdout and stderr.
type podIO struct {
	relays []*relay
	once   sync.Once
}

// startPodIO starts the relays of every app, and the stdin feed of an
// app that has one. console is set for --interactive on a terminal: the
// app's I/O then goes through the console only.
func startPodIO(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod sdpod.Pod, console bool) (_ *podIO, err error) {
	p := &podIO{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if console {
		return p, nil
	}
	for _, a := range pod.Apps {
		name := a.Spec.Name
		alog := log.With("app", name)
		for _, s := range []struct {
			fifo string
			term io.Writer
		}{
			{sdpod.AppStdoutFIFO(name), cfg.Stdout},
			{sdpod.AppStderrFIFO(name), cfg.Stderr},
		} {
			r, err := startRelay(inStage1(podDir, s.fifo), &termWriter{ctx: ctx, log: alog, term: s.term})
			if err != nil {
				return nil, err
			}
			p.relays = append(p.relays, r)
		}
		if a.Stdin != "" {
			go feedStdin(ctx, alog, inStage1(podDir, a.Stdin), cfg.Stdin)
		}
	}
	return p, nil
}

// Close drops the relays' held writers and waits until what the apps
// wrote is copied.
func (p *podIO) Close() {
	p.once.Do(func() {
		for _, r := range p.relays {
			r.Close()
		}
	})
}

// feedStdin copies run's stdin into an app's stdin FIFO, then closes the
// FIFO so that the app reads the end of file. The open waits until the
// app helper opens the FIFO for reading; if the app never starts, it
// waits until run exits.
func feedStdin(ctx context.Context, log *slog.Logger, fifo string, in *os.File) {
	f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		log.WarnContext(ctx, "open app stdin", "err", err)
		return
	}
	defer func() { _ = f.Close() }()
	if in == nil {
		return
	}
	if _, err := io.Copy(f, in); err != nil && !errors.Is(err, unix.EPIPE) {
		log.WarnContext(ctx, "copy stdin to the app", "err", err)
	}
}

// termWriter writes an app's output to run's terminal. Once the terminal
// fails (run's stdout is gone), the output is dropped but still read, so
// that the app never blocks on a full FIFO: it is in the pod's journal.
// The failure is reported once.
type termWriter struct {
	ctx        context.Context
	log        *slog.Logger
	term       io.Writer
	termFailed bool
}

func (t *termWriter) Write(p []byte) (int, error) {
	if !t.termFailed {
		if _, err := t.term.Write(p); err != nil {
			t.termFailed = true
			t.log.DebugContext(t.ctx, "app output no longer reaches run's terminal", "err", err)
		}
	}
	return len(p), nil
}
