package entrypoint

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestSlotWriter: a slot's output goes to the log and to the output FIFO
// of the app that holds it, nowhere while none does; the FIFO's reader
// sees its end once the app's status is there.
func TestSlotWriter(t *testing.T) {
	podDir := t.TempDir()
	for _, d := range []string{SlotDir, stage1abi.LogsDir, filepath.Dir(stage1abi.AppOutputFIFO("web", "stdout")), filepath.Dir(stage1abi.AppStatusFile("web"))} {
		if err := os.MkdirAll(filepath.Join(podDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(podDir, stage1abi.AppOutputFIFO("web", stage1abi.LogStreamStdout))
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w := &slotWriter{ctx: context.Background(), log: slog.New(slog.DiscardHandler), podDir: podDir, slot: 2, stream: stage1abi.LogStreamStdout}
	t.Cleanup(w.close)

	if _, err := w.Write([]byte("nobody's\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(podDir, SlotFile(2)), []byte("web\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0) //nolint:gosec // G304: the test's FIFO
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if _, err := w.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(int(r.Fd()), false); err != nil {
		t.Fatal(err)
	}
	// The app's status: after fifoLinger, tick closes the FIFO.
	if err := os.WriteFile(filepath.Join(podDir, stage1abi.AppStatusFile("web")), []byte("0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	deadline := time.After(10 * time.Second)
	var got string
wait:
	for {
		w.tick()
		select {
		case got = <-done:
			break wait
		case <-deadline:
			t.Fatal("the FIFO's reader saw no end of file after the app's status")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got != "hello\n" {
		t.Fatalf("the FIFO carried %q", got)
	}
	log, err := os.ReadFile(filepath.Join(podDir, stage1abi.AppLogFile("web"))) //nolint:gosec // G304: the test's file
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), " stdout F hello\n") || strings.Contains(string(log), "nobody's") {
		t.Fatalf("the app's log: %q", log)
	}
}
