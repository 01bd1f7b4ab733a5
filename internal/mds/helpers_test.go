package mds

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// Fixed identities of the test pods.
const (
	uuidA = "6733c088-a507-4694-aabf-edbe4fc5266f"
	uuidB = "0f4d2c1a-9b8e-4c7d-a6f5-e4d3c2b1a098"
	uuidC = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
	// tokenB is the token of pod B (43 base64url characters).
	tokenB = "Y4vFeVZzKM2T9rwkpWHfqXuGsNjS6O5cQ1w2E3r4T5y" //nolint:gosec // G101: the test's made-up token
	// idA, idB are the image ids of the apps of A and B.
	idA = "sha512-aaaa0000000000000000000000000000000000000000000000000000000000000000"
	idB = "sha512-bbbb0000000000000000000000000000000000000000000000000000000000000000"
)

// podManifest is a pod manifest with the given apps (name, image id) and
// pod annotation ip-address=ip.
func podManifest(ip string, apps ...[2]string) json.RawMessage {
	var as []string
	for _, a := range apps {
		as = append(as, fmt.Sprintf(`{"name":%q,"image":{"name":"example.com/%s","id":%q},"annotations":[{"name":"example.com/override","value":"from-pod-%s"}]}`, a[0], a[0], a[1], a[0]))
	}
	return json.RawMessage(fmt.Sprintf(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[%s],"annotations":[{"name":"ip-address","value":%q},{"name":"example.com/team/owner","value":"pod-%s"}]}`,
		strings.Join(as, ","), ip, ip))
}

// imageManifest is the manifest of image example.com/<name>.
func imageManifest(name string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/%s","annotations":[{"name":"example.com/override","value":"from-image"},{"name":"example.com/image-only","value":"image-%s"}]}`, name, name))
}

// regA is pod A, identified by address 10.1.0.2 only, with app "web".
func regA() Registration {
	return Registration{
		UUID:           uuidA,
		PodManifest:    podManifest("10.1.0.2", [2]string{"web", idA}),
		ImageManifests: map[string]json.RawMessage{"web": imageManifest("web")},
		IPs:            []netip.Addr{netip.MustParseAddr("10.1.0.2")},
	}
}

// regB is pod B, identified by tokenB from 10.1.0.3, with apps "db" and "cache".
func regB() Registration {
	return Registration{
		UUID:           uuidB,
		PodManifest:    podManifest("10.1.0.3", [2]string{"db", idB}, [2]string{"cache", idB}),
		ImageManifests: map[string]json.RawMessage{"db": imageManifest("db"), "cache": imageManifest("cache")},
		IPs:            []netip.Addr{netip.MustParseAddr("10.1.0.3")},
		Token:          tokenB,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// newTestServer is a Server with pods A and B registered.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer(testLogger(t))
	for _, r := range []Registration{regA(), regB()} {
		if err := s.Register(r); err != nil {
			t.Fatalf("mdsclient.Register(%s): %v", r.UUID, err)
		}
	}
	return s
}
