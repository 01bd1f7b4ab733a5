package hostpid

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// pair returns both ends of a connection over a socket in a temporary
// directory, as the spawner and a helper have them.
func pair(t *testing.T) (server *net.UnixConn, client *Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	client, err = Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err = ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}

// TestConversation: a request with the helper's stdio, started, a
// relayed signal and the exit, as the two ends exchange them.
func TestConversation(t *testing.T) {
	server, client := pair(t)
	type started struct {
		pid int
		err error
	}
	done := make(chan started, 1)
	go func() {
		pid, err := client.Start("app-1", [NumStdio]uintptr{os.Stdin.Fd(), os.Stdout.Fd(), os.Stderr.Fd()})
		done <- started{pid, err}
	}()
	f, files, err := ReceiveRequest(server)
	if err != nil || f.App != "app-1" || len(files) != NumStdio {
		t.Fatalf("ReceiveRequest = %+v, %d files, %v", f, len(files), err)
	}
	for _, file := range files {
		if fl, err := unix.FcntlInt(file.Fd(), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Errorf("received descriptor %d is not close-on-exec (%v)", file.Fd(), err)
		}
		_ = file.Close()
	}
	if err := Send(server, Frame{Kind: KindStarted, PID: 77}); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.pid != 77 {
		t.Fatalf("Start = %d, %v; want 77", r.pid, r.err)
	}
	if err := client.Signal(15); err != nil {
		t.Fatal(err)
	}
	if f, err := Receive(server); err != nil || f != (Frame{Kind: KindSignal, Signal: 15}) {
		t.Fatalf("Receive = %+v, %v; want SIGTERM", f, err)
	}
	if err := Send(server, Frame{Kind: KindExit, Signal: 15}); err != nil {
		t.Fatal(err)
	}
	if f, err := client.Wait(); err != nil || f.Signal != 15 {
		t.Fatalf("Wait = %+v, %v", f, err)
	}
}

func TestStartRefused(t *testing.T) {
	server, client := pair(t)
	go func() {
		_, files, _ := ReceiveRequest(server)
		closeAll(files)
		_ = Send(server, Frame{Kind: KindError, Msg: "app x: refused"})
	}()
	if _, err := client.Start("x", [NumStdio]uintptr{0, 1, 2}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Start = %v, want the spawner's refusal", err)
	}
}

// TestReceiveRequestRefuses: what a request must not be, each refused
// with its descriptors closed.
func TestReceiveRequestRefuses(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		fds   []int
	}{
		{name: "no descriptors", frame: []byte("Rapp")},
		{name: "two descriptors", frame: []byte("Rapp"), fds: []int{0, 1}},
		{name: "four descriptors", frame: []byte("Rapp"), fds: []int{0, 1, 2, 0}},
		{name: "a signal first", frame: []byte{'S', 15}, fds: []int{0, 1, 2}},
		{name: "a bad name", frame: []byte("R../x"), fds: []int{0, 1, 2}},
		{name: "too long", frame: append([]byte("R"), []byte(strings.Repeat("a", MaxFrame+10))...), fds: []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := pair(t)
			var oob []byte
			if len(tt.fds) > 0 {
				oob = unix.UnixRights(tt.fds...)
			}
			if _, _, err := client.c.WriteMsgUnix(tt.frame, oob, nil); err != nil {
				t.Fatal(err)
			}
			before := openFDs(t)
			f, files, err := ReceiveRequest(server)
			if err == nil {
				closeAll(files)
				t.Fatalf("ReceiveRequest = %+v, accepted", f)
			}
			if !errors.Is(err, ErrFrame) {
				t.Errorf("err %v, want class %v", err, ErrFrame)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open after the refusal, %d before: the request's were not closed", after, before)
			}
		})
	}
}

// TestReceiveRefusesDescriptors: only a request may carry descriptors.
func TestReceiveRefusesDescriptors(t *testing.T) {
	server, client := pair(t)
	if _, _, err := client.c.WriteMsgUnix([]byte{'S', 15}, unix.UnixRights(0), nil); err != nil {
		t.Fatal(err)
	}
	if f, err := Receive(server); !errors.Is(err, ErrFrame) {
		t.Fatalf("Receive = %+v, %v; want a refusal", f, err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
