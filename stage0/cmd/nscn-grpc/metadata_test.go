package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/stage0/cli"
)

// runMetadataService runs "nscn metadata-service args..." in-process until
// ctx is done: nscn's command tree, with the service in place of nscn's
// stub as nscn-grpc's main puts it.
func runMetadataService(ctx context.Context, stderr io.Writer, args ...string) error {
	app := cli.NewApp(nil, io.Discard, stderr)
	app.ExitErrHandler = func(*ucli.Context, error) {}
	for i, c := range app.Commands {
		if c.Name == "metadata-service" {
			app.Commands[i] = metadataServiceCommand()
		}
	}
	return app.RunContext(ctx, append([]string{"nscn", "metadata-service"}, args...))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// mdsTestToken is the token of the pod the tests register.
const mdsTestToken = "Y4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T5y" //nolint:gosec // G101: the test's made-up token

// checkMetadataService waits for the service on socket and port, registers a
// pod reachable from loopback with a token, and reads its UUID back.
func checkMetadataService(t *testing.T, socket string, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !mdsclient.Running(socket) {
		if time.Now().After(deadline) {
			t.Fatal("metadata service did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const podUUID = "6733c088-a507-4694-aabf-edbe4fc5266f"
	reg := mdsclient.Registration{
		UUID:           podUUID,
		PodManifest:    json.RawMessage(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[{"name":"web","image":{"id":"sha512-aa"}}]}`),
		ImageManifests: map[string]json.RawMessage{"web": json.RawMessage(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web"}`)},
		IPs:            []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Token:          mdsTestToken,
	}
	if _, err := mdsclient.Register(t.Context(), socket, reg); err != nil {
		t.Fatal(err)
	}
	base := mdsclient.MetadataURL(netip.MustParseAddr("127.0.0.1"), port, mdsTestToken)
	resp, err := http.Get(base + "/acMetadata/v1/pod/uuid")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != podUUID {
		t.Fatalf("GET pod/uuid = %d %q, want 200 %q", resp.StatusCode, b, podUUID)
	}
	if err := mdsclient.Unregister(t.Context(), socket, podUUID); err != nil {
		t.Fatal(err)
	}
}

func TestMetadataServiceStopsOnCancel(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "mds.sock")
	port := freePort(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runMetadataService(ctx, io.Discard, "--socket="+socket, "--listen-address=127.0.0.1", "--listen-port="+strconv.Itoa(port))
	}()
	checkMetadataService(t, socket, port)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("metadata-service: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("metadata-service did not stop on cancel")
	}
	if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		_ = c.Close()
		t.Fatal("metadata port still open")
	}
}

func TestMetadataServiceUsage(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name  string
		args  []string
		class error // nil: any error
	}{
		{name: "port zero", args: []string{"--listen-port=0"}, class: errdefs.ErrInvalidArgument},
		{name: "port too large", args: []string{"--listen-port=70000"}, class: errdefs.ErrInvalidArgument},
		{name: "argument", args: []string{"extra"}, class: errdefs.ErrInvalidArgument},
		{name: "port in use", args: []string{"--listen-address=127.0.0.1", "--listen-port=" + busyPort}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "mds.sock")
			err := runMetadataService(t.Context(), io.Discard, append([]string{"--socket=" + socket}, tt.args...)...)
			if err == nil || tt.class != nil && !errors.Is(err, tt.class) {
				t.Fatalf("metadata-service %v = %v, want class %v", tt.args, err, tt.class)
			}
			if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("socket left behind: %v", err)
			}
		})
	}
}

// envMetadataServiceChild makes TestMetadataServiceChild run the command as
// nscn's main does, stopping on SIGTERM.
const envMetadataServiceChild = "NSCN_TEST_METADATA_SERVICE_CHILD"

// TestMetadataServiceChild is the child of TestMetadataServiceStopsOnSIGTERM;
// on its own it does nothing.
func TestMetadataServiceChild(t *testing.T) {
	args := os.Getenv(envMetadataServiceChild)
	if args == "" {
		return
	}
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting")
	err := runMetadataService(ctx, os.Stderr, argv...)
	fmt.Printf("exited: %v\n", err)
}

func TestMetadataServiceStopsOnSIGTERM(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "mds.sock")
	port := freePort(t)
	argv, _ := json.Marshal([]string{"--socket=" + socket, "--listen-address=127.0.0.1", "--listen-port=" + strconv.Itoa(port)})
	cmd := exec.Command(os.Args[0], "-test.run=^TestMetadataServiceChild$", "-test.count=1") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), envMetadataServiceChild+"="+string(argv))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // best effort after a failure
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	checkMetadataService(t, socket, port)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child ended without saying how metadata-service exited")
			}
			if l == "exited: <nil>" {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("child: %v", err)
				}
				if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("socket left behind: %v", err)
				}
				return
			}
			if len(l) > 7 && l[:7] == "exited:" {
				t.Fatalf("metadata-service after SIGTERM: %s", l)
			}
		case <-timeout:
			t.Fatal("metadata-service did not stop on SIGTERM")
		}
	}
}
