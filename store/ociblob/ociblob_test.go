package ociblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestIngest(t *testing.T) {
	data := []byte("layer bytes")
	tests := []struct {
		name    string
		body    []byte
		digest  string
		size    int64
		wantErr error
	}{
		{name: "right", body: data, digest: digest(data), size: int64(len(data))},
		{name: "size unknown", body: data, digest: digest(data), size: -1},
		{name: "one byte changed", body: []byte("layer bytez"), digest: digest(data), size: int64(len(data)), wantErr: errdefs.ErrInvalidArgument},
		{name: "longer than the manifest says", body: append(append([]byte{}, data...), 'x'), digest: digest(data), size: int64(len(data)), wantErr: errdefs.ErrInvalidArgument},
		{name: "shorter", body: data[:3], digest: digest(data), size: int64(len(data)), wantErr: errdefs.ErrInvalidArgument},
		{name: "bad digest", body: data, digest: "sha256:../../etc", size: -1, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := New(dir)
			err := s.Ingest(context.Background(), bytes.NewReader(tt.body), tt.digest, tt.size)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if s.Exists(tt.digest) {
					t.Error("a bad blob was stored")
				}
				if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
					t.Errorf("temporary files left: %d", len(ents))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Verify(context.Background(), tt.digest); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Digests(context.Background())
			if len(got) != 1 || got[0] != tt.digest {
				t.Errorf("Digests = %v", got)
			}
		})
	}
}

func TestAdopt(t *testing.T) {
	data := []byte("downloaded")
	sum := func(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
	for _, tt := range []struct {
		name   string
		digest string
		sum    []byte // the download's own hash, or nil to read the file
		ok     bool
	}{
		{name: "match", digest: digest(data), ok: true},
		{name: "mismatch", digest: digest([]byte("other"))},
		{name: "match by the download's sum", digest: digest(data), sum: sum(data), ok: true},
		{name: "the download's sum is not the digest", digest: digest(data), sum: sum([]byte("other"))},
		{name: "the download's sum, another digest", digest: digest([]byte("other")), sum: sum(data)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := New(dir)
			p := filepath.Join(dir, "dl")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			err := s.Adopt(context.Background(), p, tt.digest, int64(len(data)), tt.sum)
			if (err == nil) != tt.ok {
				t.Fatalf("Adopt: %v", err)
			}
			if s.Exists(tt.digest) != tt.ok {
				t.Errorf("stored: %v", !tt.ok)
			}
			if _, err := os.Stat(p); err == nil {
				t.Error("the download is still there")
			}
		})
	}
}

func TestVerifyNoticesCorruption(t *testing.T) {
	s := New(t.TempDir())
	data := []byte("x")
	if err := s.Ingest(context.Background(), bytes.NewReader(data), digest(data), 1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(digest(data)), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), digest(data)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("got %v", err)
	}
}
