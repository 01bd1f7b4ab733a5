package mds

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzMetadataIsolation checks the one promise of the metadata API that
// matters most: whatever the path and method, pod A never gets anything of
// pod B, and a caller that is no pod gets nothing at all.
func FuzzMetadataIsolation(f *testing.F) {
	for _, p := range []string{
		"/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/pod/manifest",
		"/acMetadata/v1/pod/annotations/ip-address",
		"/acMetadata/v1/apps/db/image/id",
		"/acMetadata/v1/apps/web/annotations/",
		viaB + "/acMetadata/v1/pod/uuid",
		viaB + "/acMetadata/v1/apps/db/image/manifest",
		"/" + uuidB + "/acMetadata/v1/pod/uuid",
		"/acMetadata/v1/apps/../../" + tokenB + "/acMetadata/v1/pod/uuid",
	} {
		f.Add("GET", p, uint8(0))
		f.Add("GET", p, uint8(1))
	}
	f.Add("POST", "/acMetadata/v1/pod/hmac/sign", uint8(0))
	s := NewServer(slog.New(slog.DiscardHandler))
	for _, r := range []Registration{regA(), regB()} {
		if err := s.Register(r); err != nil {
			f.Fatal(err)
		}
	}
	h := &metadataHandler{reg: s.reg, log: s.log}
	secretsOfB := []string{uuidB, idB, "10.1.0.3", "example.com/db", "image-db", "from-pod-db"}
	f.Fuzz(func(t *testing.T, method, path string, from uint8) {
		remote := fromA
		if from%2 == 1 {
			remote = fromOther
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path},
			RemoteAddr: remote,
			Header:     http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body:       http.NoBody,
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		if remote == fromOther && rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
			t.Fatalf("%s %q from no pod: status %d %q", method, path, rec.Code, body)
		}
		for _, secret := range secretsOfB {
			if strings.Contains(body, secret) {
				t.Fatalf("%s %q from %s: body %q holds %q of pod B", method, path, remote, body, secret)
			}
		}
	})
}
