package apphelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// JournalVarlinkSocket is the pod's journald's varlink socket
// (systemd-journald.service(8)): journald makes it at its start, in its
// runtime directory.
const JournalVarlinkSocket = "/run/systemd/journal/io.systemd.journal"

// syncJournal asks the pod's journald to write everything it has
// received, as journalctl --sync does: the io.systemd.Journal.Synchronize
// method of its varlink socket, which journald answers only once it has
// read what was pending in its sockets (the app's streams included) and
// written it. A journald that is still starting (the apps do not wait
// for it) is waited for, until ctx ends.
//
// Varlink (https://varlink.org): one JSON object a message, each ended
// by a NUL byte; an error reply names an "error".
func syncJournal(ctx context.Context, path string) error {
	var c net.Conn
	for {
		var err error
		var d net.Dialer
		if c, err = d.DialContext(ctx, "unix", path); err == nil {
			break
		}
		var ne net.Error
		if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			// The dial ends at ctx's deadline, which may come
			// before ctx says it has.
			return fmt.Errorf("wait for the pod's journal: %w", context.DeadlineExceeded)
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("connect to the pod's journal: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the pod's journal: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(`{"method":"io.systemd.Journal.Synchronize","parameters":{}}` + "\x00")); err != nil {
		return fmt.Errorf("ask the pod's journal to sync: %w", err)
	}
	var reply []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		reply = append(reply, buf[:n]...)
		if bytes.IndexByte(reply, 0) >= 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("read the pod's journal's answer: %w", err)
		}
	}
	if bytes.Contains(reply, []byte(`"error"`)) {
		return fmt.Errorf("the pod's journal did not sync: %s", bytes.TrimRight(reply, "\x00"))
	}
	return nil
}

// unitStreamWritten says that the helper wrote to its own stdout or
// stderr, the unit's journal stream (its messages, its timeline, an app's
// output when the app's own stream could not be opened): see unitStream.
var unitStreamWritten atomic.Bool

// The barrier at an app's end (endOfApp). The pod's end may stop journald
// (systemd-shutdown's SIGTERM) before it has read what the apps wrote;
// journald exits at the signal without reading its sockets again. What it
// has read, it has written: it reads a stream and hands each complete
// line to the journal file in the same step of its event loop, before it
// looks at a signal. So a stream whose every byte journald has read
// (SIOCOUTQ, the bytes of the socket that its peer has not read, is 0)
// has its complete lines in the journal; only a partial line at its end
// waits for the stream's end of file (appOutput.drained). The sync
// (syncJournal) is the barrier for what the helper cannot see: another
// process's stream, a partial line.

// streamPoll is how often waitStreamRead looks at a stream: journald,
// once started, reads a stream as soon as it is written.
const streamPoll = 500 * time.Microsecond

// waitStreamRead waits until the peer of the stream socket c (journald)
// has read every byte written to it, or ctx ends.
func waitStreamRead(ctx context.Context, c interface {
	SyscallConn() (syscall.RawConn, error)
},
) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("journal stream: %w", err)
	}
	for {
		var n int
		var ierr error
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
			return fmt.Errorf("journal stream: %w", err)
		}
		if ierr != nil {
			return fmt.Errorf("journal stream: unread bytes: %w", &os.SyscallError{Syscall: "ioctl SIOCOUTQ", Err: ierr})
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the pod's journal to read an app's output: %w", ctx.Err())
		case <-time.After(streamPoll):
		}
	}
}

// unitStreamRead waits, when the helper wrote to its stdout or stderr,
// until journald has read them (waitStreamRead). A descriptor that is no
// socket is no journal stream (the unit's output goes elsewhere).
func unitStreamRead(ctx context.Context) error {
	if !unitStreamWritten.Load() {
		return nil
	}
	for fd, f := range map[int]*os.File{1: os.Stdout, 2: os.Stderr} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			continue
		}
		if err := waitStreamRead(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// journaldComm is the pod's journald's comm (proc_pid_comm(5)): the
// kernel keeps 15 characters of systemd-journald.
const journaldComm = "systemd-journal"

// sigJournalSync is SIGRTMIN+1, journald's request to sync
// (systemd-journald.service(8)): it writes what it has and starts taking
// its files offline, their fsyncs on a thread of its own, and goes on.
const sigJournalSync = unix.Signal(35)

// startJournalSync asks the pod's journald (found in proc, the pod's
// /proc) to sync (sigJournalSync) without waiting for it, once journald
// has made the signal its own (it blocks it for its event loop's
// signalfd; before that the signal would kill it, and it is left
// alone). It reports whether it asked.
//
// At the pod's end (endApp), after the immediate poweroff's signal: the
// offlining's fsyncs then run while the pod's systemd frees its manager,
// which waits for grace periods, and journald's stop under
// systemd-shutdown, which would do them otherwise, finds its files
// offline already. The sync through the varlink socket (syncJournal)
// does the same, after a wait for its answer.
func startJournalSync(proc string) (bool, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm")) //nolint:gosec // G304: a file of the pod's /proc, a pid's
		if err != nil || strings.TrimSpace(string(comm)) != journaldComm {
			continue
		}
		status, err := os.ReadFile(filepath.Join(proc, e.Name(), "status")) //nolint:gosec // G304: a file of the pod's /proc, a pid's
		if err != nil {
			return false, err
		}
		if !sigBlocked(string(status), sigJournalSync) {
			return false, nil
		}
		if err := unix.Kill(pid, sigJournalSync); err != nil {
			return false, &os.SyscallError{Syscall: "kill", Err: err}
		}
		return true, nil
	}
	return false, nil
}

// sigBlocked reports whether status, a /proc/PID/status, has sig in its
// SigBlk mask (proc_pid_status(5): hexadecimal, bit n-1 for signal n).
func sigBlocked(status string, sig unix.Signal) bool {
	for l := range strings.Lines(status) {
		v, ok := strings.CutPrefix(l, "SigBlk:")
		if !ok {
			continue
		}
		m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		return err == nil && m&(1<<(uint(sig)-1)) != 0
	}
	return false
}
