package entrypoint

import (
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// notify sends msg to the watch's socket, as systemd-nspawn would.
func notify(t *testing.T, w *readyWatch, msg string) {
	t.Helper()
	addr := strings.TrimPrefix(w.Env(), "NOTIFY_SOCKET=")
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func TestReadyWatch(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name   string
		sender int // the pid the watch listens to; 0: this process
		msgs   []string
		ready  bool
	}{
		{name: "ready", msgs: []string{"STATUS=Container running: Ready.", "READY=1\n"}, ready: true},
		{name: "status only", msgs: []string{"STATUS=Container running: User job app-a.service/start running"}},
		{name: "ready from another process", sender: 1, msgs: []string{"READY=1\n"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			podDir := t.TempDir()
			uuid := "00000000-0000-4000-8000-" + strings.Repeat("0", 11) + string(rune('a'+i)) //nolint:gosec // G115: i indexes a short table
			// The service manager of run, if it runs under one.
			fwdAddr := "@nscn-test-forward-" + uuid
			fwd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: fwdAddr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = fwd.Close() }()
			w, err := listenReady(uuid, fwdAddr)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := w.Env(), "NOTIFY_SOCKET="+sdpod.NotifySocket(uuid); got != want {
				t.Fatalf("Env() = %q, want %q", got, want)
			}
			sender := tt.sender
			if sender == 0 {
				sender = os.Getpid()
			}
			// Sent before the watch starts, as systemd-nspawn may: the
			// socket keeps them.
			for _, m := range tt.msgs {
				notify(t, w, m)
			}
			w.watch(t.Context(), log, podDir, sender)
			ready := filepath.Join(podDir, stage1abi.ReadyFile)
			deadline := time.Now().Add(2 * time.Second)
			for tt.ready && time.Now().Before(deadline) {
				if _, err := os.Stat(ready); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !tt.ready {
				// Give a wrong answer the time to show.
				time.Sleep(100 * time.Millisecond)
			}
			w.Close()
			b, err := os.ReadFile(ready) //nolint:gosec // G304: a file the test made
			switch {
			case tt.ready && err != nil:
				t.Fatalf("no ready file: %v", err)
			case tt.ready:
				if _, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err != nil {
					t.Fatalf("ready file holds %q, not a time", b)
				}
			case !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("ready file written (%q, %v), want none", b, err)
			}
			// READY=1 reached run's service manager exactly when the
			// pod was recorded ready.
			if err := fwd.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, err := fwd.Read(buf)
			switch {
			case tt.ready && (err != nil || string(buf[:n]) != "READY=1"):
				t.Fatalf("forwarded %q, %v; want READY=1", buf[:n], err)
			case !tt.ready && err == nil:
				t.Fatalf("forwarded %q for a pod that is not ready", buf[:n])
			}
			// Closed: the name is free again.
			w, err = listenReady(uuid, "")
			if err != nil {
				t.Fatalf("listen again after Close: %v", err)
			}
			w.Close()
		})
	}
}

func TestListenReadyTwice(t *testing.T) {
	uuid := "00000000-0000-4000-8000-0000000000ff"
	w, err := listenReady(uuid, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w2, err := listenReady(uuid, ""); err == nil {
		w2.Close()
		t.Fatal("a second listener on the same pod's socket succeeded")
	}
}

func TestSDNotifyRefusesOtherAddresses(t *testing.T) {
	for _, addr := range []string{"relative/path", "vsock:2:1", ""} {
		if err := sdNotify(addr, "READY=1"); err == nil {
			t.Errorf("sdNotify(%q) succeeded", addr)
		}
	}
}

func TestSDNotifyPathSocket(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	if err := sdNotify(addr, "READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if err := l.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Read(buf); err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("received %q, %v", buf[:n], err)
	}
}
