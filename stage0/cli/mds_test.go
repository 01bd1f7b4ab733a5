package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mds"
	"github.com/nosecone/nscn/internal/mdsclient"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// serveMDS runs a metadata service on a socket in a temporary directory
// and a loopback port until the test ends.
func serveMDS(t *testing.T) (socket string, port int) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "mds.sock")
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := mds.ListenRegistration(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	md, err := mds.ListenMetadata(ctx, "127.0.0.1", 0)
	if err != nil {
		_ = reg.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- mds.NewServer(slog.New(slog.DiscardHandler)).Serve(ctx, mds.Listeners{Registration: reg, Metadata: []net.Listener{md}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metadata service: %v", err)
		}
	})
	return socket, md.Addr().(*net.TCPAddr).Port
}

// testPodDir makes a pod directory with the files registration reads.
func testPodDir(t *testing.T) *pod.Pod {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		stage1abi.PodManifestFile: `{"acVersion":"0.8.11","acKind":"PodManifest","apps":[{"name":"web","image":{"id":"sha512-aa"}}]}`,
		filepath.Join(stage1abi.AppInfoDir("web"), stage1abi.AppManifestFile): `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web"}`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &pod.Pod{UUID: "6733c088-a507-4694-aabf-edbe4fc5266f", Path: dir}
}

// podUUIDStatus GETs pod/uuid with the pod's token and returns the status.
func podUUIDStatus(t *testing.T, port int, token string) int {
	t.Helper()
	resp, err := http.Get(mdsclient.MetadataURL(netip.MustParseAddr("127.0.0.1"), port, token) + "/acMetadata/v1/pod/uuid")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestRegisterWithMDS(t *testing.T) {
	socket, port := serveMDS(t)
	none := filepath.Join(t.TempDir(), "none.sock")
	g := &Globals{Log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name     string
		opts     mdsOptions
		register bool
		class    error
	}{
		{name: "auto, service running", opts: mdsOptions{Socket: socket}, register: true},
		{name: "auto, no service", opts: mdsOptions{Socket: none}},
		{name: "true, service running", opts: mdsOptions{Register: mdsRegisterYes, Socket: socket}, register: true},
		{name: "true, no service", opts: mdsOptions{Register: mdsRegisterYes, Socket: none}, class: errdefs.ErrUnavailable},
		{name: "false, service running", opts: mdsOptions{Register: mdsRegisterNo, Socket: socket}},
		{name: "bad value", opts: mdsOptions{Register: "maybe", Socket: socket}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPodDir(t)
			reg, err := registerWithMDS(t.Context(), g, p, tt.opts)
			if tt.class != nil {
				if !errors.Is(err, tt.class) {
					t.Fatalf("registerWithMDS = %+v, %v; want class %v", reg, err, tt.class)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			recorded, rerr := os.ReadFile(filepath.Join(p.Path, stage1abi.MDSSocketFile))
			if !tt.register {
				if reg != (mdsRegistration{}) || rerr == nil {
					t.Fatalf("registered (%+v, socket file read: %v), want nothing", reg, rerr)
				}
				return
			}
			if reg.Token == "" || reg.Port != port || string(recorded) != socket+"\n" {
				t.Fatalf("registration %+v, recorded socket %q; want a token, port %d, socket %s", reg, recorded, port, socket)
			}
			if st := podUUIDStatus(t, port, reg.Token); st != http.StatusOK {
				t.Fatalf("GET with the pod's token = %d, want 200", st)
			}
			// gc and rm unregister; a second time is not an error.
			unregisterPod(t.Context(), g, p)
			unregisterPod(t.Context(), g, p)
			if st := podUUIDStatus(t, port, reg.Token); st != http.StatusForbidden {
				t.Fatalf("GET after unregistering = %d, want 403", st)
			}
		})
	}
}

func TestRedactMDSToken(t *testing.T) {
	got := redactMDSToken([]string{"--net=host", "--mds-token=secret", "--mds-port=1", "u"})
	want := []string{"--net=host", "--mds-token=(redacted)", "--mds-port=1", "u"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("redactMDSToken = %q, want %q", got, want)
	}
	if strings.Contains(strings.Join(got, " "), "secret") {
		t.Fatal("the token is still there")
	}
}
