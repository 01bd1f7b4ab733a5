package mds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/testutil"
)

// serve runs s on a registration socket in a temporary directory and a
// loopback TCP port until the test ends, and returns both addresses.
func serve(t *testing.T, s *Server) (socket, metadata string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	socket = filepath.Join(t.TempDir(), "mds.sock")
	reg, err := ListenRegistration(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ListenMetadata(ctx, "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, Listeners{Registration: reg, Metadata: []net.Listener{md}}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return socket, "http://" + md.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec,noctx // a test URL on loopback
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestRegistrationOverUnixSocket(t *testing.T) {
	s := NewServer(testLogger(t))
	socket, md := serve(t, s)
	ctx := t.Context()

	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	if !mdsclient.Running(socket) {
		t.Fatal("Running = false on a serving socket")
	}

	// Every registration is answered with the metadata port.
	u, err := url.Parse(md)
	if err != nil {
		t.Fatal(err)
	}
	register := func(r Registration) error {
		got, err := mdsclient.Register(ctx, socket, r)
		if err == nil && strconv.Itoa(got.MetadataPort) != u.Port() {
			return fmt.Errorf("registration answered port %d, want %s", got.MetadataPort, u.Port())
		}
		return err
	}
	// B reaches the service from loopback with its token.
	b := regB()
	b.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	steps := []struct {
		name  string
		do    func() error
		class error
	}{
		{name: "register A", do: func() error { return register(regA()) }},
		{name: "register B", do: func() error { return register(b) }},
		{name: "register A again", do: func() error { return register(regA()) }, class: errdefs.ErrAlreadyExists},
		{name: "register invalid", do: func() error { r := regA(); r.UUID = "x"; return register(r) }, class: errdefs.ErrInvalidArgument},
		{name: "unregister A", do: func() error { return mdsclient.Unregister(ctx, socket, uuidA) }},
		{name: "unregister A again", do: func() error { return mdsclient.Unregister(ctx, socket, uuidA) }, class: errdefs.ErrNotFound},
		{name: "unregister bad uuid", do: func() error { return mdsclient.Unregister(ctx, socket, "x") }, class: errdefs.ErrInvalidArgument},
		{name: "register A anew", do: func() error { return register(regA()) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			if st.class == nil && err != nil || st.class != nil && !errors.Is(err, st.class) {
				t.Fatalf("err = %v, want class %v", err, st.class)
			}
		})
	}

	t.Run("metadata over loopback", func(t *testing.T) {
		if code, body := httpGet(t, md+"/"+tokenB+"/acMetadata/v1/pod/uuid"); code != 200 || body != uuidB {
			t.Fatalf("GET uuid = %d %q, want 200 %q", code, body, uuidB)
		}
		if code, _ := httpGet(t, md+"/acMetadata/v1/pod/uuid"); code != 403 {
			t.Fatalf("GET uuid without token = %d, want 403", code)
		}
	})
	t.Run("unregistered pod is forbidden", func(t *testing.T) {
		if err := mdsclient.Unregister(ctx, socket, uuidB); err != nil {
			t.Fatal(err)
		}
		if code, _ := httpGet(t, md+"/"+tokenB+"/acMetadata/v1/pod/uuid"); code != 403 {
			t.Fatalf("GET uuid = %d, want 403", code)
		}
	})
}

func TestClientWithoutService(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "none.sock")
	// A path that exists but where nothing listens is dialed and
	// refused; a path that does not exist is not dialed.
	notSocket := filepath.Join(dir, "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.sock")
	if err := os.Symlink(filepath.Join(dir, "gone"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{socket, notSocket, dangling, filepath.Join(dir, "no", "dir.sock")} {
		if mdsclient.Running(p) {
			t.Fatalf("mdsclient.Running(%s) = true without a service", filepath.Base(p))
		}
	}
	if _, err := mdsclient.Register(t.Context(), socket, regA()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Register = %v, want Unavailable", err)
	}
	if err := mdsclient.Unregister(t.Context(), socket, uuidA); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Unregister = %v, want Unavailable", err)
	}
}

// The peer check is tested through the handler, so that it needs no second
// user: a request whose connection belongs to another uid is refused.
func TestRegistrationPeerCheck(t *testing.T) {
	s := NewServer(testLogger(t))
	s.euid = 1000
	tests := []struct {
		name   string
		peer   *peer
		status int
	}{
		{name: "root", peer: &peer{uid: 0}, status: http.StatusNoContent},
		{name: "service user", peer: &peer{uid: 1000}, status: http.StatusNoContent},
		{name: "other user", peer: &peer{uid: 1001}, status: http.StatusForbidden},
		{name: "unreadable credentials", peer: &peer{err: errors.New("boom")}, status: http.StatusForbidden},
		{name: "no credentials", status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "http://mds"+pathPing, nil)
			if tt.peer != nil {
				req = req.WithContext(context.WithValue(req.Context(), peerKey{}, *tt.peer))
			}
			rec := httptest.NewRecorder()
			newRegHandler(s).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
		})
	}
}

func TestRegistrationAPIErrors(t *testing.T) {
	s := NewServer(testLogger(t))
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{name: "not JSON", method: "POST", path: pathPods, body: "{", status: 400},
		{name: "unknown field", method: "POST", path: pathPods, body: `{"uuid":"` + uuidA + `","key":"x"}`, status: 400},
		{name: "wrong method", method: "PUT", path: pathPods, status: 405},
		{name: "unknown path", method: "GET", path: "/v2/pods", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://mds"+tt.path, strings.NewReader(tt.body))
			req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer{uid: 0}))
			rec := httptest.NewRecorder()
			newRegHandler(s).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d (%q), want %d", rec.Code, rec.Body.String(), tt.status)
			}
		})
	}
}

func TestListenRegistration(t *testing.T) {
	t.Run("replaces a stale socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		_ = l.Close() // the socket file stays, nobody listens
		l2, err := ListenRegistration(t.Context(), path)
		if err != nil {
			t.Fatalf("ListenRegistration over a stale socket: %v", err)
		}
		_ = l2.Close()
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("socket left after Close: %v", err)
		}
	})
	t.Run("refuses a live socket", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		l, err := ListenRegistration(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		if _, err := ListenRegistration(t.Context(), path); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("second ListenRegistration = %v, want AlreadyExists", err)
		}
	})
	t.Run("refuses a regular file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.sock")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ListenRegistration(t.Context(), path); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("ListenRegistration = %v, want FailedPrecondition", err)
		}
	})
	t.Run("creates the directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "run", "s.sock")
		l, err := ListenRegistration(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Close()
	})
}

func TestServeWithoutListeners(t *testing.T) {
	if err := NewServer(testLogger(t)).Serve(t.Context(), Listeners{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Serve = %v, want InvalidArgument", err)
	}
}

// brokenListener fails every Accept with a permanent error.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("accept: broken") }

func TestServeReturnsWhenAListenerFails(t *testing.T) {
	good, err := ListenMetadata(t.Context(), "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ListenMetadata(t.Context(), "127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- NewServer(testLogger(t)).Serve(t.Context(), Listeners{Metadata: []net.Listener{good, brokenListener{other}}})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("Serve = %v, want the accept error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after a listener failed")
	}
	if _, err := net.Dial("tcp", good.Addr().String()); err == nil {
		t.Fatal("the good listener is still open")
	}
}

// envPeerChild makes the test binary (TestMain) try the registration API on
// the socket it names, and report.
const envPeerChild = "NSCN_MDS_TEST_PEER_CHILD"

// TestRegistrationRefusesOtherUsers connects as nobody through a socket made
// world-writable, to show that the uid check, not the mode, keeps others out.
func TestRegistrationRefusesOtherUsers(t *testing.T) {
	testutil.RequiresRoot(t)
	s := NewServer(testLogger(t))
	socket, _ := serve(t, s)
	dir := filepath.Dir(socket)
	for _, chmod := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(dir), 0o755}, {dir, 0o755}, {socket, 0o666}} {
		if err := os.Chmod(chmod.path, chmod.mode); err != nil {
			t.Fatal(err)
		}
	}
	// The go test binary may sit in a directory nobody cannot enter.
	self, err := os.ReadFile(os.Args[0]) //nolint:gosec // G703: the test binary itself
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mds.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil { //nolint:gosec // the test binary must be executable by nobody
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), envPeerChild+"="+socket)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as nobody: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "running=false denied=true" {
		t.Fatalf("child as nobody: %q, want running=false denied=true", got)
	}
	if s.reg.get(uuidA) != nil {
		t.Fatal("nobody registered a pod")
	}
}
