package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/pgp/pgptest"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

// signers are gpg keys made once for the tests of the package.
type signers struct {
	gpg                *pgptest.GPG
	prefix, root, none string // fingerprints: trusted for example.com, trusted as root, untrusted
	prefixPub, rootPub []byte
}

// testKeys makes the keys, in a gpg home that lasts as long as t.
func testKeys(t *testing.T) *signers {
	t.Helper()
	g := pgptest.NewGPG(t)
	s := &signers{gpg: g}
	s.prefix, s.prefixPub = g.GenKey(t, "Prefix Signer <prefix@example.com>", pgptest.Ed25519)
	s.root, s.rootPub = g.GenKey(t, "Root Signer <root@example.com>", pgptest.Ed25519)
	s.none, _ = g.GenKey(t, "Stranger <stranger@example.org>", pgptest.Ed25519)
	return s
}

// entry is one tar entry of a test image.
type entry struct {
	name string
	size int64 // zeros, for a large file; body otherwise
	body string
	dir  bool
}

// gzipACI builds a gzip ACI named name. With manifestLast the manifest
// follows the rootfs, as actool writes it. zeros, when set, is the size of
// a rootfs file of zeros, written as concatenated gzip members of 1 MiB
// each, so that a bomb costs little to build.
func gzipACI(t *testing.T, name string, manifestLast bool, zeros int64) []byte {
	t.Helper()
	manifest := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,"labels":[{"name":"os","value":"linux"}]}`, name)
	entries := []entry{{name: "rootfs", dir: true}, {name: "rootfs/hello", body: name + "\n"}}
	if zeros > 0 {
		entries = append(entries, entry{name: "rootfs/zeros", size: zeros})
	}
	m := entry{name: "manifest", body: manifest}
	if manifestLast {
		entries = append(entries, m)
	} else {
		entries = append([]entry{m}, entries...)
	}
	var out bytes.Buffer
	member := func(b []byte) {
		zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var block bytes.Buffer
	var zeroMember []byte
	for _, e := range entries {
		tw := tar.NewWriter(&block)
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.size > 0:
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.size == 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// The zeros: the header, then 1 MiB members (size is a multiple).
		member(block.Bytes())
		block.Reset()
		if zeroMember == nil {
			start := out.Len()
			member(make([]byte, 1<<20))
			zeroMember = bytes.Clone(out.Bytes()[start:])
		} else {
			out.Write(zeroMember)
		}
		for range e.size/(1<<20) - 1 {
			out.Write(zeroMember)
		}
	}
	block.Write(make([]byte, 1024)) // end of archive
	member(block.Bytes())
	return out.Bytes()
}

// countingFile is an image file that counts the bytes read from it and
// can change its file's content when it is rewound.
type countingFile struct {
	*os.File
	read   *atomic.Int64
	onSeek func(n int) // called before the n-th seek (from 1)
	seeks  int
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingFile) Seek(off int64, whence int) (int64, error) {
	c.seeks++
	if c.onSeek != nil {
		c.onSeek(c.seeks)
	}
	return c.File.Seek(off, whence)
}

// rig is a Fetcher on a fresh store and keystore, with counters on its
// seams.
type rig struct {
	f       *Fetcher
	opens   atomic.Int32
	read    atomic.Int64
	imports atomic.Int32
	onSeek  func(n int)
}

func newRig(t *testing.T, k *signers, trustPrefix, trustRoot bool) *rig {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	s, err := store.Open(ctx, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	ks := &pgp.Keystore{LocalDir: filepath.Join(dir, "etc")}
	if trustPrefix {
		if _, err := ks.StoreTrustedKey(ctx, k.prefixPub, "example.com", false); err != nil {
			t.Fatal(err)
		}
	}
	if trustRoot {
		if _, err := ks.StoreTrustedKey(ctx, k.rootPub, "", true); err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{}
	r.f = &Fetcher{
		Store: s, Keys: ks, PullPolicy: PullUpdate, InsecureHTTP: true,
		DownloadDir: filepath.Join(dir, "data", "tmp", "downloads"),
		open: func(name string) (imageFile, error) {
			r.opens.Add(1)
			f, err := os.Open(name) //nolint:gosec // G304: a file the test made
			if err != nil {
				return nil, err
			}
			return &countingFile{File: f, read: &r.read, onSeek: r.onSeek}, nil
		},
		importImage: func(ctx context.Context, src io.Reader, opts store.ImportOptions) (*index.Image, error) {
			r.imports.Add(1)
			return s.Import(ctx, src, opts)
		},
	}
	return r
}

// storeWrites lists what the store holds besides its index and locks:
// blobs and temporary files.
func (r *rig) storeWrites(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(r.f.Store.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.f.Store.Dir, p)
		if d.IsDir() || strings.HasPrefix(rel, "db"+string(filepath.Separator)) || strings.HasSuffix(rel, ".lock") {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// signedFile writes data to dir/image.aci and signs it with fpr
// ("garbage" for a garbage signature).
func signedFile(t *testing.T, k *signers, dir string, data []byte, fpr string) string {
	t.Helper()
	p := pgptest.WriteFile(t, dir, "image.aci", data)
	switch fpr {
	case "garbage":
		pgptest.WriteFile(t, dir, "image.aci.asc", []byte("-----BEGIN PGP SIGNATURE-----\n\nZ2FyYmFnZQ==\n-----END PGP SIGNATURE-----\n"))
	default:
		k.gpg.Sign(t, fpr, p)
	}
	return p
}

// TestSignatureBeforeDecompression: an image is decompressed and written
// to the store only once its signature, checked over the file as fetched,
// came from a key trusted for its name. The rig counts the opens of the
// image file, the bytes read from it and the imports.
func TestSignatureBeforeDecompression(t *testing.T) {
	k := testKeys(t)
	const bomb = 512 << 20 // zeros; about 0.5 MiB of gzip
	tests := []struct {
		name         string
		image        []byte
		signer       string // fingerprint, "garbage", or "" (a signature of other bytes by the prefix key)
		noKeys       bool
		wantErr      error
		wantMsg      string
		maxOpens     int32
		maxReads     int   // the most times the whole file may be read
		extraRead    int64 // bytes that may be read besides
		wantImports  int32
		wantImported bool
	}{
		{
			name: "garbage signature", image: gzipACI(t, "example.com/bomb", false, bomb), signer: "garbage",
			wantErr: errdefs.ErrInvalidArgument, wantMsg: "parse signature",
		},
		{
			name: "untrusted key", image: gzipACI(t, "example.com/bomb", false, bomb), signer: k.none,
			wantErr: errdefs.ErrPermissionDenied, wantMsg: "not trusted for any image",
		},
		{
			name: "no keys at all", image: gzipACI(t, "example.com/bomb", false, bomb), signer: k.prefix, noKeys: true,
			wantErr: errdefs.ErrFailedPrecondition, wantMsg: "nscn trust --prefix",
		},
		{
			name: "trusted key, other bytes", image: gzipACI(t, "example.com/bomb", false, bomb),
			wantErr: errdefs.ErrPermissionDenied, wantMsg: "bad signature",
			maxOpens: 1, maxReads: 1,
		},
		{
			name: "prefix key outside its prefix, manifest first", image: gzipACI(t, "example.org/bomb", false, bomb), signer: k.prefix,
			wantErr: errdefs.ErrPermissionDenied, wantMsg: `"example.org/bomb": signed by key`,
			maxOpens: 1, maxReads: 1, extraRead: nameScanLimit,
		},
		{
			// Beyond nameScanLimit the name is known only at import,
			// which refuses before committing.
			name: "prefix key outside its prefix, manifest last", image: gzipACI(t, "example.org/big", true, 16<<20), signer: k.prefix,
			wantErr: errdefs.ErrPermissionDenied, wantMsg: `"example.org/big": signed by key`,
			maxOpens: 1, maxReads: 3, wantImports: 1,
		},
		{
			name: "prefix key, manifest last", image: gzipACI(t, "example.com/app", true, 0), signer: k.prefix,
			maxOpens: 1, maxReads: 3, wantImports: 1, wantImported: true,
		},
		{
			name: "prefix key below its prefix, manifest first", image: gzipACI(t, "example.com/app/sub", false, 0), signer: k.prefix,
			maxOpens: 1, maxReads: 3, wantImports: 1, wantImported: true,
		},
		{
			// A root key trusts every name: no scan for it.
			name: "root key", image: gzipACI(t, "other.org/app", true, 0), signer: k.root,
			maxOpens: 1, maxReads: 2, wantImports: 1, wantImported: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, k, !tc.noKeys, !tc.noKeys)
			dir := t.TempDir()
			signer := tc.signer
			if signer == "" {
				signer = k.prefix
			}
			p := signedFile(t, k, dir, tc.image, signer)
			if tc.signer == "" {
				// The signature of other bytes.
				if err := os.WriteFile(p, append(bytes.Clone(tc.image), 0), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			im, err := r.f.Fetch(t.Context(), Request{Ref: p})
			switch {
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("Fetch() error = %v, want %v", err, tc.wantErr)
			case tc.wantErr != nil && !strings.Contains(err.Error(), tc.wantMsg):
				t.Errorf("Fetch() error %q does not mention %q", err, tc.wantMsg)
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Fetch() error = %v", err)
			}
			if n := r.opens.Load(); n > tc.maxOpens {
				t.Errorf("the image file was opened %d times, want at most %d", n, tc.maxOpens)
			}
			if n, most := r.read.Load(), int64(tc.maxReads)*st.Size()+tc.extraRead; n > most {
				t.Errorf("read %d bytes of a %d-byte image, want at most %d", n, st.Size(), most)
			}
			if n := r.imports.Load(); n != tc.wantImports {
				t.Errorf("%d imports, want %d", n, tc.wantImports)
			}
			files := r.storeWrites(t)
			if !tc.wantImported {
				if len(files) > 0 {
					t.Errorf("the refused image left %v in the store", files)
				}
				return
			}
			if im == nil || im.SignedBy != signer {
				t.Fatalf("imported %+v, want one signed by %s", im, signer)
			}
			if len(files) != 1 {
				t.Errorf("store holds %v, want one blob", files)
			}
		})
	}
}

// TestImageChangedAfterVerification: the import hashes the bytes it reads
// and refuses to commit an image file that changed after its signature was
// verified.
func TestImageChangedAfterVerification(t *testing.T) {
	k := testKeys(t)
	r := newRig(t, k, false, true)
	p := signedFile(t, k, t.TempDir(), gzipACI(t, "example.com/app", true, 0), k.root)
	evil := gzipACI(t, "example.com/app", false, 1<<20)
	r.onSeek = func(n int) {
		if n == 1 { // the rewind between verification and import
			if err := os.WriteFile(p, evil, 0o644); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := r.f.Fetch(t.Context(), Request{Ref: p})
	if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Fetch() error = %v, want a PermissionDenied saying the image changed", err)
	}
	if files := r.storeWrites(t); len(files) > 0 {
		t.Errorf("the changed image left %v in the store", files)
	}
}

// TestSizeLimitNamesTheFlag: a trusted image over MaxSize stops at the
// limit, and the error says which setting to change.
func TestSizeLimitNamesTheFlag(t *testing.T) {
	k := testKeys(t)
	r := newRig(t, k, false, true)
	r.f.MaxSize = 4 << 20
	p := signedFile(t, k, t.TempDir(), gzipACI(t, "example.com/big", false, 64<<20), k.root)
	_, err := r.f.Fetch(t.Context(), Request{Ref: p})
	var le *aci.LimitError
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !errors.As(err, &le) || le.Limit != 4<<20 {
		t.Fatalf("Fetch() error = %v, want an InvalidArgument LimitError of 4 MiB", err)
	}
	if !strings.Contains(err.Error(), "--max-image-size") || !strings.Contains(err.Error(), "4.0 MiB") {
		t.Errorf("error %q does not name --max-image-size and its value", err)
	}
	if files := r.storeWrites(t); len(files) > 0 {
		t.Errorf("the refused image left %v in the store", files)
	}
}

// TestRemoteSignatureBeforeDownload: over HTTP, a signature that can
// never verify is refused before the image is downloaded; a good one
// fetches.
func TestRemoteSignatureBeforeDownload(t *testing.T) {
	k := testKeys(t)
	dir := t.TempDir()
	image := gzipACI(t, "example.com/app", true, 0)
	for _, c := range []struct{ name, signer string }{{"garbage", "garbage"}, {"stranger", k.none}, {"good", k.prefix}} {
		if err := os.Mkdir(filepath.Join(dir, c.name), 0o755); err != nil {
			t.Fatal(err)
		}
		signedFile(t, k, filepath.Join(dir, c.name), image, c.signer)
	}
	var imageGets atomic.Int32
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, ".aci") {
			imageGets.Add(1)
		}
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name     string
		wantErr  error
		wantGets int32
	}{
		{name: "garbage", wantErr: errdefs.ErrInvalidArgument},
		{name: "stranger", wantErr: errdefs.ErrPermissionDenied},
		{name: "good", wantGets: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			imageGets.Store(0)
			r := newRig(t, k, true, false)
			_, err := r.f.Fetch(t.Context(), Request{Ref: srv.URL + "/" + tc.name + "/image.aci"})
			if !errors.Is(err, tc.wantErr) && (tc.wantErr != nil || err != nil) {
				t.Fatalf("Fetch() error = %v, want %v", err, tc.wantErr)
			}
			if n := imageGets.Load(); n != tc.wantGets {
				t.Errorf("the image was downloaded %d times, want %d", n, tc.wantGets)
			}
			if files := r.storeWrites(t); tc.wantErr != nil && len(files) > 0 {
				t.Errorf("the refused image left %v in the store", files)
			}
		})
	}
}
