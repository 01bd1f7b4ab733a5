package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestPullAll(t *testing.T) {
	blob := func(s string) (string, []byte) {
		sum := sha256.Sum256([]byte(s))
		return "sha256:" + hex.EncodeToString(sum[:]), []byte(s)
	}
	good, goodBody := blob(strings.Repeat("layer ", 50000))
	other, otherBody := blob("config")
	tampered, _ := blob("what the manifest says")
	served := map[string][]byte{good: goodBody, other: otherBody, tampered: []byte("what the registry sends")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := served[path.Base(r.URL.Path)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	url := func(d string) string { return srv.URL + "/v2/bench/pull/blobs/" + d }
	missing, _ := blob("absent")

	for _, tt := range []struct {
		name    string
		blobs   []string
		store   bool
		wantErr string
	}{
		{name: "discard", blobs: []string{good, other}},
		{name: "discard does not check digests", blobs: []string{tampered}},
		{name: "store", blobs: []string{good, other}, store: true},
		{name: "store refuses a wrong body", blobs: []string{good, tampered}, store: true, wantErr: "hashes to"},
		{name: "missing blob", blobs: []string{missing}, wantErr: "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			for _, d := range tt.blobs {
				urls = append(urls, url(d))
			}
			dir := ""
			if tt.store {
				dir = filepath.Join(t.TempDir(), "store")
			}
			err := pullAll(context.Background(), urls, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("pullAll: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.store {
				return
			}
			for _, d := range tt.blobs {
				got, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(d, "sha256:")))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, served[d]) {
					t.Errorf("%s: stored %d bytes, want %d", d, len(got), len(served[d]))
				}
			}
		})
	}
}
