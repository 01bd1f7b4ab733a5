package index

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

func key(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return "sha512-" + string(b)
}

func TestImagesRoundTripAndResolve(t *testing.T) {
	ctx := context.Background()
	ix := New(filepath.Join(t.TempDir(), "db", "index.db"))
	// An index that was never written reads as empty.
	if err := ix.View(ctx, func(tx *Tx) error {
		ims, err := tx.Images()
		if len(ims) != 0 || err != nil {
			t.Fatalf("empty index: %v %v", ims, err)
		}
		// A bare prefix is bad input, not a missing image.
		if _, err := tx.ResolveKey("sha512-"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("ResolveKey(sha512-) on an empty index = %v, want InvalidArgument", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err := ix.Update(ctx, func(tx *Tx) error {
		for i, k := range []string{key('a'), "sha512-ab" + key('0')[9:], key('b')} {
			if err := tx.PutImage(&Image{Key: k, Name: fmt.Sprintf("example.com/img%d", i%2), Labels: map[string]string{"version": fmt.Sprint(i)}, ImportTime: now.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		ref   string
		want  string
		class error
	}{
		{name: "full key", ref: key('b'), want: key('b')},
		{name: "unique prefix", ref: "sha512-bbb", want: key('b')},
		{name: "full 128 hex id", ref: key('b') + key('c')[7:], want: key('b')},
		{name: "upper case", ref: "SHA512-BBB", want: key('b')},
		{name: "ambiguous", ref: "sha512-a", class: errdefs.ErrInvalidArgument},
		{name: "missing", ref: "sha512-c", class: errdefs.ErrNotFound},
		// A prefix of "sha512-" is a prefix of every key: it names none.
		{name: "empty", ref: "", class: errdefs.ErrInvalidArgument},
		{name: "bare prefix", ref: "sha512-", class: errdefs.ErrInvalidArgument},
		{name: "bare prefix without dash", ref: "sha512", class: errdefs.ErrInvalidArgument},
		{name: "bare prefix upper case", ref: "SHA512-", class: errdefs.ErrInvalidArgument},
		{name: "start of the prefix", ref: "s", class: errdefs.ErrInvalidArgument},
		{name: "not an ID", ref: "example.com/app", class: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ix.View(ctx, func(tx *Tx) error {
				got, err := tx.ResolveKey(tt.ref)
				if tt.class != nil {
					if !errors.Is(err, tt.class) {
						t.Fatalf("ResolveKey(%s) = %v, want class %v", tt.ref, err, tt.class)
					}
					return nil
				}
				if err != nil || got != tt.want {
					t.Fatalf("ResolveKey(%s) = %s, %v", tt.ref, got, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	_ = ix.View(ctx, func(tx *Tx) error {
		found, err := tx.FindByName("example.com/img0", nil)
		if err != nil || len(found) != 2 || found[0].Key != key('b') {
			t.Fatalf("FindByName newest first: %v %v", found, err)
		}
		found, _ = tx.FindByName("example.com/img0", map[string]string{"version": "0"})
		if len(found) != 1 || found[0].Key != key('a') {
			t.Fatalf("FindByName with labels: %v", found)
		}
		return nil
	})
}

func TestDeleteImageDropsItsRemotes(t *testing.T) {
	ctx := context.Background()
	ix := New(filepath.Join(t.TempDir(), "index.db"))
	err := ix.Update(ctx, func(tx *Tx) error {
		if err := tx.PutImage(&Image{Key: key('a')}); err != nil {
			return err
		}
		if err := tx.PutRemote(&Remote{URL: "https://x/a.aci", Key: key('a'), ETag: `"1"`, MaxAge: time.Hour, DownloadTime: time.Now()}); err != nil {
			return err
		}
		return tx.PutRemote(&Remote{URL: "https://x/b.aci", Key: key('b')})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = ix.View(ctx, func(tx *Tx) error {
		r, _ := tx.Remote("https://x/a.aci")
		if r == nil || r.ETag != `"1"` || !r.Fresh(time.Now()) {
			t.Fatalf("remote = %+v", r)
		}
		return nil
	})
	if err := ix.Update(ctx, func(tx *Tx) error { return tx.DeleteImage(key('a')) }); err != nil {
		t.Fatal(err)
	}
	_ = ix.View(ctx, func(tx *Tx) error {
		if r, _ := tx.Remote("https://x/a.aci"); r != nil {
			t.Fatalf("remote of deleted image kept: %+v", r)
		}
		if r, _ := tx.Remote("https://x/b.aci"); r == nil {
			t.Fatal("unrelated remote dropped")
		}
		return nil
	})
}

func TestConcurrentWritersSerialise(t *testing.T) {
	ctx := context.Background()
	ix := New(filepath.Join(t.TempDir(), "index.db"))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate Index values open the file independently, as
			// separate processes would.
			other := New(ix.Path)
			errs <- other.Update(ctx, func(tx *Tx) error {
				return tx.PutImage(&Image{Key: key(byte('a' + i%6)), Name: "same"})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = ix.View(ctx, func(tx *Tx) error {
		ims, _ := tx.Images()
		if len(ims) != 6 {
			t.Fatalf("images = %d, want 6", len(ims))
		}
		return nil
	})
}

func TestRemoteFreshness(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		r    Remote
		want bool
	}{
		{name: "no max-age", r: Remote{DownloadTime: now}, want: false},
		{name: "within", r: Remote{DownloadTime: now.Add(-time.Minute), MaxAge: time.Hour}, want: true},
		{name: "expired", r: Remote{DownloadTime: now.Add(-2 * time.Hour), MaxAge: time.Hour}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Fresh(now); got != tt.want {
				t.Fatalf("Fresh = %v", got)
			}
		})
	}
}
