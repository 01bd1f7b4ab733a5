package entrypoint

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/podlog"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// slotWriter takes what one stream of an output slot of a mutable pod
// carries (the port guest.SlotPort(slot, stream), relayed by run) and
// writes it where the app holding the slot (SlotFile, written by app/add
// on the host) has its output: its log (stage1abi.AppLogFile, for nscn
// logs) and, while a reader has it open, its output FIFO
// (stage1abi.AppOutputFIFO, for the CRI's log writer), as the nspawn
// flavor's app helper does. Output while no app holds the slot is
// dropped.
//
// The FIFO is closed, for its reader to see the end of the app's output,
// once the app's status has been recorded and nothing came for
// fifoLinger: every byte the app wrote was in run's pipe before its
// status was (a virtio-serial write returns once qemu has the bytes, and
// qemu writes them to the pipe at once).
type slotWriter struct {
	ctx    context.Context
	log    *slog.Logger
	podDir string
	slot   int
	stream string

	mu      sync.Mutex
	owner   string
	logFile *os.File
	rec     io.Writer
	fifo    *os.File
	last    time.Time // the last write
	ended   bool      // the owner's FIFO was closed after its status
}

// fifoLinger is how long the FIFO stays open after the app's status is
// there and its last output was written.
const fifoLinger = 300 * time.Millisecond

func (w *slotWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = time.Now()
	owner := slotOwner(w.podDir, w.slot)
	if owner != w.owner {
		w.closeLocked()
		w.owner = owner
		if owner != "" {
			w.openLocked()
		}
	}
	if owner == "" {
		return len(p), nil
	}
	if w.rec != nil {
		if _, err := w.rec.Write(p); err != nil {
			w.log.WarnContext(w.ctx, "app output is no longer recorded in its log", "app", owner, "err", err)
			_ = w.logFile.Close()
			w.logFile, w.rec = nil, nil
		}
	}
	if w.fifo == nil {
		w.openFIFOLocked()
	}
	if w.fifo != nil {
		if _, err := w.fifo.Write(p); err != nil {
			w.log.DebugContext(w.ctx, "the reader of the app's output FIFO is gone", "app", owner, "err", err)
			_ = w.fifo.Close()
			w.fifo = nil
		}
	}
	return len(p), nil
}

// openLocked opens the log of the slot's new owner.
func (w *slotWriter) openLocked() {
	lf, err := os.OpenFile(filepath.Join(w.podDir, stage1abi.AppLogFile(w.owner)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		w.log.WarnContext(w.ctx, "open the app's log", "app", w.owner, "err", err)
		return
	}
	w.logFile, w.rec = lf, podlog.NewFile(lf, nil).Stream(w.stream)
}

// openFIFOLocked opens the owner's output FIFO when a reader has it open
// (ENXIO otherwise, which is no error): beneath the pod directory, no
// symlink followed, and only a FIFO (the guest can write the stage1
// rootfs, where the FIFO is).
func (w *slotWriter) openFIFOLocked() {
	p := filepath.Join(w.podDir, stage1abi.AppOutputFIFO(w.owner, w.stream))
	// Looked at through an O_PATH handle first: opening a device node
	// the guest made there (virtiofsd makes it on the host) could do
	// anything.
	pf, err := inroot.OpenNoSymlinks(p, unix.O_PATH)
	if err != nil {
		return
	}
	defer func() { _ = pf.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(int(pf.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		w.log.WarnContext(w.ctx, "the app's output FIFO is not a FIFO: not written", "app", w.owner)
		return
	}
	f, err := os.OpenFile(inroot.FDPath(pf), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !errors.Is(err, unix.ENXIO) {
			w.log.DebugContext(w.ctx, "open the app's output FIFO", "app", w.owner, "err", err)
		}
		return
	}
	// Blocking writes from here: the reader takes every byte.
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		_ = f.Close()
		return
	}
	w.fifo = f
}

// tick follows the slot's owner and closes the FIFO once the owner has
// ended (see slotWriter); run calls it every few tens of milliseconds.
func (w *slotWriter) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if owner := slotOwner(w.podDir, w.slot); owner != w.owner {
		w.closeLocked()
		w.owner, w.ended = owner, false
		if owner != "" {
			w.openLocked()
		}
	}
	if w.owner == "" {
		return
	}
	if _, err := os.Lstat(filepath.Join(w.podDir, stage1abi.AppStatusFile(w.owner))); err != nil {
		w.ended = false // not started, or running (app/start removes the status)
		return
	}
	if w.ended || time.Since(w.last) < fifoLinger {
		return
	}
	if w.fifo == nil {
		// An app that wrote nothing: its reader still needs its end of
		// file.
		w.openFIFOLocked()
	}
	if w.fifo != nil {
		_ = w.fifo.Close()
		w.fifo = nil
	}
	w.ended = true
}

func (w *slotWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeLocked()
}

func (w *slotWriter) closeLocked() {
	if w.logFile != nil {
		_ = w.logFile.Close()
	}
	if w.fifo != nil {
		_ = w.fifo.Close()
	}
	w.logFile, w.rec, w.fifo = nil, nil, nil
}
