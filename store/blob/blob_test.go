package blob

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
)

func ingest(t *testing.T, s *Store, data []byte) Info {
	t.Helper()
	w, err := s.NewWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	info, err := w.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestIngestNamesBlobBySHA512(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "small", data: []byte("hello")},
		{name: "larger than buffer", data: bytes.Repeat([]byte("x"), 3<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t.TempDir())
			info := ingest(t, s, tt.data)
			sum := sha512.Sum512(tt.data)
			wantID := Prefix + hex.EncodeToString(sum[:])
			if info.ID != wantID {
				t.Fatalf("ID = %s, want %s", info.ID, wantID)
			}
			if info.Key != wantID[:len(Prefix)+KeyHexLen] || !ValidKey(info.Key) {
				t.Fatalf("Key = %s", info.Key)
			}
			if info.Size != int64(len(tt.data)) {
				t.Fatalf("Size = %d", info.Size)
			}
			got, err := os.ReadFile(s.Path(info.Key))
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("stored content differs (err %v)", err)
			}
			if err := s.Verify(context.Background(), info.Key); err != nil {
				t.Fatal(err)
			}
			if tmp, _ := os.ReadDir(s.tmpDir()); len(tmp) != 0 {
				t.Fatalf("temp files left: %v", tmp)
			}
		})
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s := New(t.TempDir())
	w, err := s.NewWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	keys, err := s.Keys(context.Background())
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys = %v, %v", keys, err)
	}
	if tmp, _ := os.ReadDir(s.tmpDir()); len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	s := New(t.TempDir())
	info := ingest(t, s, []byte("original"))
	if err := os.WriteFile(s.Path(info.Key), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.Verify(context.Background(), info.Key)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Verify = %v, want FailedPrecondition", err)
	}
}

func TestOpenMissingIsNotFound(t *testing.T) {
	s := New(t.TempDir())
	_, err := s.Open(context.Background(), Prefix+"00")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Open = %v", err)
	}
}

func TestConcurrentIngestOfSameContent(t *testing.T) {
	s := New(t.TempDir())
	data := bytes.Repeat([]byte("same"), 100000)
	var wg sync.WaitGroup
	infos := make([]Info, 8)
	for i := range infos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			infos[i] = ingest(t, s, data)
		}()
	}
	wg.Wait()
	for _, in := range infos {
		if in != infos[0] {
			t.Fatalf("different infos: %v vs %v", in, infos[0])
		}
	}
	keys, _ := s.Keys(context.Background())
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
}

func TestCleanSparesLiveIngests(t *testing.T) {
	s := New(t.TempDir())
	live, err := s.NewWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	stale := filepath.Join(s.tmpDir(), "ingest-stale")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Clean(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale ingest not removed: %v", err)
	}
	if _, err := os.Stat(live.TempPath()); err != nil {
		t.Fatalf("live ingest removed: %v", err)
	}
}
