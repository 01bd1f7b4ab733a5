package apphelper

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestOpenTTY drives an app's terminal from both ends: what the app
// writes on the slave comes out on the output, the input reaches the
// slave and its end is an end of file there, a resize frame sets the
// size, and Wait returns once the slave is closed.
func TestOpenTTY(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no /dev/ptmx:", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = outR.Close() }()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = inR.Close() }()
	resize := filepath.Join(t.TempDir(), "resize")
	if err := unix.Mkfifo(resize, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hostPTMX := func() (int, error) { return unix.Open("/dev/ptmx", ptmxFlags, 0) }
	tty, err := openTTY(ctx, slog.New(slog.DiscardHandler), hostPTMX, outW.Fd(), inR, resize)
	if err != nil {
		t.Fatal(err)
	}
	_ = outW.Close() // the relay has its own
	slave := tty.Slave
	tty.Slave = nil // the test plays the app, which keeps its end

	if _, err := slave.WriteString("from the app\n"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("from the app\r\n"))
	if _, err := io.ReadFull(outR, got); err != nil || string(got) != "from the app\r\n" {
		t.Fatalf("output %q, %v", got, err)
	}

	rw, err := os.OpenFile(resize, os.O_WRONLY, 0) //nolint:gosec // G304: the test's FIFO
	if err != nil {
		t.Fatal(err)
	}
	frame := stage1abi.EncodeWinsize(31, 97)
	if _, err := rw.Write(frame[:]); err != nil {
		t.Fatal(err)
	}
	_ = rw.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
		if err == nil && ws.Row == 31 && ws.Col == 97 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("size %+v, %v; want 31x97", ws, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Raw-ish: no echo, so the output holds the app's writes only.
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if _, err := inW.WriteString("typed\n"); err != nil {
		t.Fatal(err)
	}
	_ = inW.Close()
	line := make([]byte, 64)
	n, err := slave.Read(line)
	if err != nil || string(line[:n]) != "typed\n" {
		t.Fatalf("the app read %q, %v", line[:n], err)
	}
	// The input's end: the end-of-file character, a read of 0 bytes.
	if n, err := slave.Read(line); n != 0 || (err != nil && err != io.EOF) {
		t.Fatalf("after the input's end the app read %q, %v; want an end of file", line[:n], err)
	}

	_ = slave.Close()
	waited := make(chan struct{})
	go func() { tty.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(ttyDrainTimeout + 5*time.Second):
		t.Fatal("Wait did not return")
	}
	if b, err := io.ReadAll(outR); err != nil || len(b) != 0 {
		t.Fatalf("output after the end: %q, %v", b, err)
	}
}
