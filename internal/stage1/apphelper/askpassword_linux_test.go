package apphelper

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDropAskPasswordWatch: removing the directory frees an inotify
// watch on it (the kernel reports IN_IGNORED), which is what spares the
// pod's systemd a grace period when it closes the descriptor; a directory
// that is gone or holds a query is left as it is, without an error.
func TestDropAskPasswordWatch(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	t.Run("watched", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ask-password")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = unix.Close(fd) }()
		wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVE)
		if err != nil {
			t.Fatal(err)
		}
		dropAskPasswordWatch(ctx, log, dir)
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the directory is still there: %v", err)
		}
		buf := make([]byte, 4096)
		n, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatalf("no inotify event after the removal: %v", err)
		}
		ignored := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ewd := binary.NativeEndian.Uint32(buf[off:])
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			if int64(ewd) == int64(wd) && mask&unix.IN_IGNORED != 0 {
				ignored = true
			}
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
		}
		if !ignored {
			t.Fatal("the watch was not freed (no IN_IGNORED)")
		}
	})

	t.Run("gone", func(t *testing.T) {
		dropAskPasswordWatch(ctx, log, filepath.Join(t.TempDir(), "ask-password"))
	})

	t.Run("holds a query", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ask-password")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		q := filepath.Join(dir, "ask.1")
		if err := os.WriteFile(q, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dropAskPasswordWatch(ctx, log, dir)
		if _, err := os.Stat(q); err != nil {
			t.Fatalf("the query is gone: %v", err)
		}
	})
}
