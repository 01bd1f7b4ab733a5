package apphelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// An app with a terminal (sdpod.App.TTY, stage1abi.AnnotationAppTTY):
//
//	input FIFO ──▶ helper ──▶ master ═ slave: the app's 0, 1, 2 and
//	(App.Stdin)     │  ▲                     controlling terminal
//	resize FIFO ──▶ │  │ TIOCSWINSZ
//	app's stdout ◀──┘──┘ (the journal copy, its FIFO: stdout only)
//
// The terminal is allocated in a devpts instance of its own (privatePTMX),
// mounted in a mount namespace of one thread of the helper and gone from
// every view once the master is open: nothing of it is on the host, and
// no other app of the pod (each sees the pod's devpts at /dev/pts) can
// open the slave and read or type on the app's terminal. The app's
// /dev/pts does not show it either (ttyname(3) fails; isatty(3) holds).
// The helper keeps the master; the process that
// becomes the app makes a session of its own and takes the slave, its fd
// 0, as its controlling terminal (prepareAndExec). The end of the input
// FIFO is the terminal's end-of-file character (a shell reading its
// prompt exits), not a hang-up.

// ttyDrainTimeout bounds how long the helper copies the terminal's
// output after the app has ended: a process outside the app's namespace
// that holds the slave (passed over a socket) does not hold up the app's
// end.
const ttyDrainTimeout = 2 * time.Second

// appTTY is the master side of an app's terminal.
type appTTY struct {
	master *os.File
	// Slave is the app's end, to pass as its stdin, stdout and stderr;
	// CloseSlave closes the helper's copy once the app has it.
	Slave *os.File
	out   *os.File // the helper's dup of where the output goes
	done  chan struct{}
}

// openTTY allocates the app's terminal and starts its relays: the output
// to out (a descriptor the helper keeps: the app's stdout pipe, or the
// unit's stdout), from in when it is not nil, sizes from the FIFO
// resize.
func openTTY(ctx context.Context, log *slog.Logger, openMaster func() (int, error), out uintptr, in *os.File, resize string) (_ *appTTY, err error) {
	mfd, err := openMaster()
	if err != nil {
		return nil, err
	}
	// Non-blocking, so that the runtime's poller reads it and a Close
	// ends a read in progress (tty.Wait's bound).
	t := &appTTY{master: os.NewFile(uintptr(mfd), "/dev/ptmx"), done: make(chan struct{})}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, &os.SyscallError{Syscall: "ioctl(TIOCSPTLCK)", Err: err}
	}
	// TIOCGPTPEER opens the slave from the master, without a path
	// lookup in /dev/pts.
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		return nil, &os.SyscallError{Syscall: "ioctl(TIOCGPTPEER)", Err: errno}
	}
	t.Slave = os.NewFile(sfd, "tty slave")
	ofd, err := unix.FcntlInt(out, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "fcntl(F_DUPFD_CLOEXEC)", Err: err}
	}
	t.out = os.NewFile(uintptr(ofd), "app output")
	go func() {
		defer close(t.done)
		defer func() { _ = t.out.Close() }()
		// A read of the master fails (EIO) once no process has the
		// slave open: the app and what it left are gone.
		_, _ = io.Copy(t.out, t.master)
	}()
	if in != nil {
		go t.feed(ctx, log, in)
	}
	if resize != "" {
		// Read and write: the FIFO never reads an end of file, however
		// often the log writer comes and goes.
		fd, err := unix.Open(resize, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			err = &os.PathError{Op: "open", Path: resize, Err: err}
			// The terminal works, at the size 0x0.
			log.WarnContext(ctx, "the app's terminal keeps its size", "err", err)
		} else {
			go t.resizes(ctx, log, os.NewFile(uintptr(fd), resize))
		}
	}
	return t, nil
}

// feed copies the app's input to the terminal; at its end, it sends the
// terminal's end-of-file character.
func (t *appTTY) feed(ctx context.Context, log *slog.Logger, in *os.File) {
	if _, err := io.Copy(t.master, in); err != nil {
		log.DebugContext(ctx, "app input to its terminal", "err", err)
		return
	}
	eof := byte(4) // ^D, the default
	_ = t.onMaster(func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err == nil && tio.Cc[unix.VEOF] != 0 {
			eof = tio.Cc[unix.VEOF]
		}
		return err
	})
	_, _ = t.master.Write([]byte{eof})
}

// resizes applies each frame of the resize FIFO, which the helper holds
// open for reading and writing (no end of file) until it exits.
func (t *appTTY) resizes(ctx context.Context, log *slog.Logger, f *os.File) {
	defer func() { _ = f.Close() }()
	var b [stage1abi.WinsizeFrameLen]byte
	for {
		if _, err := io.ReadFull(f, b[:]); err != nil {
			return
		}
		rows, cols, err := stage1abi.ParseWinsize(b[:])
		if err != nil {
			log.DebugContext(ctx, "terminal size", "err", err)
			continue
		}
		err = t.onMaster(func(fd int) error {
			return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			log.DebugContext(ctx, "terminal size", "err", err)
		}
	}
}

// onMaster calls f with the master's descriptor, which stays open
// meanwhile (os.File.Fd would also make it blocking, and a Close would
// no longer end a read); os.ErrClosed once the master is closed.
func (t *appTTY) onMaster(f func(fd int) error) error {
	rc, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// CloseSlave closes the helper's copy of the slave, once the app has
// its own: then the app's end is the terminal's.
func (t *appTTY) CloseSlave() {
	if t.Slave != nil {
		_ = t.Slave.Close()
		t.Slave = nil
	}
}

// Wait waits, after the app has ended, until its output is copied, for
// ttyDrainTimeout at most, and closes the master.
func (t *appTTY) Wait() {
	t.CloseSlave()
	select {
	case <-t.done:
	case <-time.After(ttyDrainTimeout):
	}
	t.close()
}

func (t *appTTY) close() {
	t.CloseSlave()
	_ = t.master.Close()
	if t.out != nil {
		<-t.done
	}
}

// ttyOf opens the terminal of app for execApp: its output goes where
// the app's stdout would (stdout), its input is the input FIFO the
// helper opened as its own stdin (openStdin), when the app has one.
func ttyOf(ctx context.Context, log *slog.Logger, app *sdpod.App, stdout uintptr) (*appTTY, error) {
	var in *os.File
	if app.Stdin != "" {
		in = os.Stdin
	}
	t, err := openTTY(ctx, log, privatePTMX, stdout, in, sdpod.AppResizeFIFO(app.Spec.Name))
	if err != nil {
		return nil, fmt.Errorf("app %s: its terminal: %w", app.Spec.Name, err)
	}
	return t, nil
}

// ptmxFlags open a terminal's master: non-blocking, so that the runtime's
// poller reads it and a Close ends a read in progress (appTTY.Wait).
const ptmxFlags = unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC | unix.O_NONBLOCK

// privatePTMX opens the master of a new terminal in a devpts instance
// of its own: on a thread of its own, in a new mount namespace whose
// mounts are private, it mounts a new devpts on /dev/pts and opens its
// ptmx. The thread, and the namespace with it, end after (ownthread.Run):
// the instance lives on in the master and the slave only.
func privatePTMX() (int, error) {
	fd, err := -1, error(nil)
	ownthread.Run(func() {
		if err = unix.Unshare(unix.CLONE_NEWNS); err != nil {
			err = &os.SyscallError{Syscall: "unshare(CLONE_NEWNS)", Err: err}
			return
		}
		if err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			err = &os.PathError{Op: "mount (make private)", Path: "/", Err: err}
			return
		}
		if err = unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0600,mode=0600"); err != nil {
			err = &os.PathError{Op: "mount devpts", Path: "/dev/pts", Err: err}
			return
		}
		if fd, err = unix.Open("/dev/pts/ptmx", ptmxFlags, 0); err != nil {
			err = &os.PathError{Op: "open", Path: "/dev/pts/ptmx", Err: err}
		}
	})
	return fd, err
}
