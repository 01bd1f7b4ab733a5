package entrypoint

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestListenUnixLongPodDir binds virtiofsd's socket beneath a pod
// directory whose path is longer than a socket address holds, and
// connects to it by that path's descriptor, as qemu and stop do; the
// connection waits in the backlog until it is taken.
func TestListenUnixLongPodDir(t *testing.T) {
	podDir := filepath.Join(t.TempDir(), strings.Repeat("d", 100), strings.Repeat("e", 60))
	if err := os.MkdirAll(filepath.Join(podDir, StateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if len(filepath.Join(podDir, RootSocket)) <= 108 {
		t.Fatal("the test's path is not long enough")
	}
	sock, err := listenUnix(podDir, RootSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sock.Close() }()
	st, err := os.Stat(filepath.Join(podDir, RootSocket))
	if err != nil || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("no socket at %s: %v", RootSocket, err)
	}
	dir, err := os.Open(filepath.Join(podDir, StateDir)) //nolint:gosec // G304: the test's own temporary directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dir.Close() }()
	c, err := net.Dial("unix", "/proc/self/fd/"+strconv.Itoa(int(dir.Fd()))+"/"+filepath.Base(RootSocket))
	if err != nil {
		t.Fatalf("connect before anyone accepts: %v", err)
	}
	_ = c.Close()
	// The listener a child inherits is the same socket.
	l, err := net.FileListener(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	a, err := l.Accept()
	if err != nil {
		t.Fatalf("accept the waiting connection: %v", err)
	}
	_ = a.Close()
	if _, err := listenUnix(podDir, RootSocket); err == nil {
		t.Error("a second listenUnix on the same path succeeded")
	}
}
