package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The apps' standard I/O, seen from run:
//
//	app unit ──StandardOutput=file:──▶ /nscn/io/APP/stdout ──relay──┬─▶ run's stdout
//	         ──StandardError=file:───▶ /nscn/io/APP/stderr ──relay──┤─▶ run's stderr
//	                                                                └─▶ logs/APP.log (podlog records)
//
// With --interactive and a stdin that is not a terminal, run also copies
// its stdin into /nscn/io/APP/stdin, which the app helper opens as the
// app's fd 0. With --interactive on a terminal, none of this carries the
// app's I/O: systemd-nspawn's console does (nspawn.ConsoleInteractive) and
// nothing is recorded.

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
	if err := os.MkdirAll(inStage1(podDir, filepath.Dir(sdpod.AppStdoutFIFO(name))), 0o755); err != nil {
		return fmt.Errorf("create app I/O directory: %w", err)
	}
	paths := []string{sdpod.AppStdoutFIFO(name), sdpod.AppStderrFIFO(name)}
	if app.Stdin != "" {
		paths = append(paths, app.Stdin)
	}
	for _, p := range paths {
		if err := unix.Mkfifo(inStage1(podDir, p), 0o600); err != nil {
			return &os.PathError{Op: "mkfifo", Path: inStage1(podDir, p), Err: err}
		}
	}
	return nil
}

// podIO relays the apps' FIFOs to run's stdout and stderr and to their log
// files.
type podIO struct {
	relays []*relay
	logs   []*os.File
	once   sync.Once
}

// startPodIO creates the pod's log directory and files and starts the
// relays of every app, and the stdin feed of an app that has one. console
// is set for --interactive on a terminal: the app's I/O then goes through
// the console only, and its log stays empty.
func startPodIO(ctx context.Context, log *slog.Logger, cfg RunConfig, podDir string, pod sdpod.Pod, console bool) (_ *podIO, err error) {
	p := &podIO{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := os.Mkdir(filepath.Join(podDir, stage1abi.LogsDir), 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	for _, a := range pod.Apps {
		name := a.Spec.Name
		lp := filepath.Join(podDir, stage1abi.AppLogFile(name))
		lf, err := os.OpenFile(lp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
		if err != nil {
			return nil, fmt.Errorf("create log of app %s: %w", name, err)
		}
		p.logs = append(p.logs, lf)
		if console {
			continue
		}
		file := podlog.NewFile(lf, nil)
		alog := log.With("app", name)
		for _, s := range []struct {
			fifo, stream string
			term         io.Writer
		}{
			{sdpod.AppStdoutFIFO(name), stage1abi.LogStreamStdout, cfg.Stdout},
			{sdpod.AppStderrFIFO(name), stage1abi.LogStreamStderr, cfg.Stderr},
		} {
			r, err := startRelay(inStage1(podDir, s.fifo), &teeWriter{ctx: ctx, log: alog, term: s.term, rec: file.Stream(s.stream)})
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

// Close drops the relays' held writers, waits until what the apps wrote
// is copied, and closes the log files.
func (p *podIO) Close() {
	p.once.Do(func() {
		for _, r := range p.relays {
			r.Close()
		}
		for _, f := range p.logs {
			_ = f.Close()
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

// teeWriter writes an app's output to run's terminal and to its log. A
// failure of one does not stop the other: output goes on to the log when
// run's stdout is gone, and to the terminal when the disk is full; each
// failure is reported once.
type teeWriter struct {
	ctx                 context.Context
	log                 *slog.Logger
	term, rec           io.Writer
	termFailed, recFail bool
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if !t.termFailed {
		if _, err := t.term.Write(p); err != nil {
			t.termFailed = true
			t.log.DebugContext(t.ctx, "app output no longer reaches run's terminal", "err", err)
		}
	}
	if !t.recFail {
		if _, err := t.rec.Write(p); err != nil {
			t.recFail = true
			t.log.WarnContext(t.ctx, "app output is no longer recorded in its log", "err", err)
		}
	}
	return len(p), nil
}
