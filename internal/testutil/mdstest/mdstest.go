// Package mdstest starts the metadata service of the nscn binary under
// test ("nscn metadata-service") for the end-to-end suites. It is only
// imported from _test.go files; the service it starts needs root.
package mdstest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"

	"github.com/nosecone/nscn/internal/mdsclient"
)

// Service is a metadata service a test started: on loopback, with its own
// registration socket and port, stopped when the test ends.
type Service struct {
	Socket string
	Port   int
}

// freeLoopbackPort returns a TCP port nothing listens on at 127.0.0.1 now.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs "nscn metadata-service" (nscn is the binary under test)
// until the test ends and waits until it answers on its registration
// socket. Its metadata API listens on 127.0.0.1 only, unless listenAll: a
// pod on its own network reaches it at the host side of that network.
func Start(t testing.TB, nscn string, listenAll bool) Service {
	t.Helper()
	s := Service{Socket: filepath.Join(t.TempDir(), "mds.sock"), Port: freeLoopbackPort(t)}
	ctx, cancel := context.WithCancel(context.Background())
	// No data dir: the service needs none, and a process naming one
	// would look like a pod left behind to a test.
	addr := "--listen-address=127.0.0.1"
	if listenAll {
		addr = "--listen-address=0.0.0.0"
	}
	cmd := exec.CommandContext(ctx, nscn, "metadata-service", addr, //nolint:gosec // G204: the test runs the nscn under test, argv built by the test
		fmt.Sprintf("--listen-port=%d", s.Port), "--socket="+s.Socket)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var log testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start the metadata service: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		err := cmd.Wait()
		if t.Failed() {
			t.Logf("metadata service (exit: %v):\n%s", err, log.String())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); !mdsclient.Running(s.Socket); {
		if time.Now().After(deadline) {
			t.Fatalf("the metadata service does not answer on %s:\n%s", s.Socket, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}
