package mds

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
)

// envActivationChild makes the test binary run activationChild: the parent test re-execs
// the test binary with it, passing sockets as systemd does.
const envActivationChild = "NSCN_MDS_TEST_ACTIVATION_CHILD"

// TestMain runs activationChild instead of the tests when the test binary
// is re-executed by TestActivation.
func TestMain(m *testing.M) {
	if os.Getenv(envActivationChild) != "" {
		activationChild()
		return
	}
	if socket := os.Getenv(envPeerChild); socket != "" {
		_, err := mdsclient.Register(context.Background(), socket, regA())
		fmt.Printf("running=%v denied=%v\n", mdsclient.Running(socket), errors.Is(err, errdefs.ErrPermissionDenied))
		return
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

// activationChild is the child of TestActivation. It prints one line with
// what Activated returned, then, if it got listeners, serves them until
// SIGTERM and prints "stopped".
func activationChild() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ls, err := Activated()
	if err != nil {
		fmt.Printf("error invalid=%v\n", errors.Is(err, errdefs.ErrInvalidArgument))
		return
	}
	leaked := os.Getenv("LISTEN_FDS") + os.Getenv("LISTEN_PID")
	fmt.Printf("registration=%v metadata=%d leaked=%q\n", ls.Registration != nil, len(ls.Metadata), leaked)
	if ls.Registration == nil && len(ls.Metadata) == 0 {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := NewServer(log).Serve(ctx, ls); err != nil {
		fmt.Printf("serve: %v\n", err)
		return
	}
	fmt.Println("stopped")
}

// listenerFile returns a dup of l's socket, for a child's ExtraFiles.
func listenerFile(t *testing.T, l net.Listener) *os.File {
	t.Helper()
	f, err := l.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestActivation(t *testing.T) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("needs /bin/sh to set LISTEN_PID to the child's pid")
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "act.sock")
	ul, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ul.(*net.UnixListener).SetUnlinkOnClose(false) // the child owns the socket now
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr := tl.Addr().String()
	uf, tf := listenerFile(t, ul), listenerFile(t, tl)
	_ = ul.Close()
	_ = tl.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = udp.Close() }()
	udpf, err := udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = udpf.Close() }()

	tests := []struct {
		name   string
		files  []*os.File
		ownPID bool // set LISTEN_PID to the child's pid, as systemd does
		first  string
		serves bool
	}{
		{name: "unix and tcp", files: []*os.File{uf, tf}, ownPID: true, first: `registration=true metadata=1 leaked=""`, serves: true},
		{name: "other pid", files: []*os.File{uf, tf}, first: `registration=false metadata=0 leaked=""`},
		{name: "datagram socket", files: []*os.File{udpf}, ownPID: true, first: "error invalid=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-test.run=^$"}
			var cmd *exec.Cmd
			if tt.ownPID {
				cmd = exec.Command(sh, append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0]}, args...)...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
				cmd.Env = append(os.Environ(), envActivationChild+"=1", fmt.Sprintf("LISTEN_FDS=%d", len(tt.files)))
			} else {
				cmd = exec.Command(os.Args[0], args...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
				cmd.Env = append(os.Environ(), envActivationChild+"=1", fmt.Sprintf("LISTEN_FDS=%d", len(tt.files)), "LISTEN_PID=1")
			}
			cmd.ExtraFiles = tt.files
			cmd.Stderr = tWriter{t}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // best effort after a failure
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			next := func() string {
				t.Helper()
				select {
				case l := <-lines:
					return l
				case <-time.After(30 * time.Second):
					t.Fatal("child said nothing for 30s")
					return ""
				}
			}
			if got := next(); got != tt.first {
				t.Fatalf("child: %q, want %q", got, tt.first)
			}
			if !tt.serves {
				return
			}

			// The child serves registrations on the passed Unix socket
			// and metadata on the passed TCP socket.
			ctx := t.Context()
			r := regB()
			r.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
			if _, err := mdsclient.Register(ctx, socket, r); err != nil {
				t.Fatalf("Register through the activated socket: %v", err)
			}
			if code, body := httpGet(t, "http://"+tcpAddr+"/"+tokenB+"/acMetadata/v1/pod/uuid"); code != 200 || body != uuidB {
				t.Fatalf("GET uuid through the activated socket = %d %q", code, body)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "stopped" {
				t.Fatalf("child after SIGTERM: %q, want stopped", got)
			}
			for l := range lines {
				t.Errorf("child said more: %q", l)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v", err)
			}
		})
	}
}

// TestActivatedNotForUs runs in-process: LISTEN_PID of another process
// means the fds are not ours, and Activated must not touch them.
func TestActivatedNotForUs(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "2")
	ls, err := Activated()
	if err != nil || ls.Registration != nil || len(ls.Metadata) != 0 {
		t.Fatalf("Activated = %+v, %v; want nothing", ls, err)
	}
	if os.Getenv("LISTEN_FDS") != "" {
		t.Fatal("LISTEN_FDS left in the environment")
	}
}
