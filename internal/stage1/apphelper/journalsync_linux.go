package apphelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
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
