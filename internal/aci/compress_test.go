package aci

import (
	"bytes"
	stdgzip "compress/gzip"
	"crypto/sha512"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/nosecone/nscn/internal/aci/decoders"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// allDecoders are what nscn-fetch passes: every format decodes.
var allDecoders = Decoders{Bzip2: decoders.Bzip2, XZ: decoders.XZ, Zstd: decoders.Zstd}

// TestDecompressWithoutDecoders: the formats whose decoder is not given
// are refused as ErrNoDecoder (NotImplemented), before anything is read
// past the header; gzip and plain tars need none.
func TestDecompressWithoutDecoders(t *testing.T) {
	payload := testPayload(t)
	tests := []struct {
		name     string
		compress func(testing.TB, []byte) []byte
		refused  bool
	}{
		{name: "plain tar", compress: func(_ testing.TB, b []byte) []byte { return b }},
		{name: "gzip", compress: compressGzip},
		{name: "bzip2", compress: compressBzip2, refused: true},
		{name: "xz", compress: compressXZ, refused: true},
		{name: "zstd", compress: compressZstd, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, _, err := Decompress(bytes.NewReader(tt.compress(t, payload)), Decoders{})
			if tt.refused {
				if !errors.Is(err, ErrNoDecoder) || !errors.Is(err, errdefs.ErrNotImplemented) {
					t.Fatalf("Decompress = %v, want ErrNoDecoder and NotImplemented", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			defer func() { _ = rc.Close() }()
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %d bytes, %v; want the %d-byte payload", len(got), err, len(payload))
			}
		})
	}
}

// testPayload is a tar big enough to span several read-ahead chunks, with
// both compressible and incompressible parts.
func testPayload(t testing.TB) []byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // G404: deterministic data from a fixed seed, not a secret
	noise := make([]byte, 3*chunkSize/2)
	for i := range noise {
		noise[i] = byte(rnd.Uint32()) //nolint:gosec // G115: the low byte is the noise wanted
	}
	return buildTar(t,
		ent{name: "manifest", typ: '0', body: testManifest, mode: 0o644},
		dirEnt("rootfs/", 0o755),
		fileEnt("rootfs/noise", string(noise)),
		fileEnt("rootfs/text", string(bytes.Repeat([]byte("appc "), chunkSize))),
	)
}

func compressGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressZstd(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compressXZ(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressBzip2 shells out: the stdlib only decompresses bzip2.
func compressBzip2(t testing.TB, b []byte) []byte {
	t.Helper()
	bin := testutil.RequiresCommand(t, "bzip2")
	cmd := exec.CommandContext(t.Context(), bin, "-c", "-9") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Stdin = bytes.NewReader(b)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bzip2: %v", err)
	}
	return out.Bytes()
}

func TestDecompressFormats(t *testing.T) {
	payload := testPayload(t)
	tests := []struct {
		name     string
		compress func(testing.TB, []byte) []byte
		want     Compression
		str      string
	}{
		{name: "plain tar", compress: func(_ testing.TB, b []byte) []byte { return b }, want: Uncompressed, str: "uncompressed"},
		{name: "gzip", compress: compressGzip, want: Gzip, str: "gzip"},
		{name: "bzip2", compress: compressBzip2, want: Bzip2, str: "bzip2"},
		{name: "xz", compress: compressXZ, want: XZ, str: "xz"},
		{name: "zstd", compress: compressZstd, want: Zstd, str: "zstd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.compress(t, payload)
			rc, c, err := Decompress(bytes.NewReader(in), allDecoders)
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			defer func() { _ = rc.Close() }()
			if c != tt.want || c.String() != tt.str {
				t.Errorf("compression = %v (%q), want %v (%q)", c, c.String(), tt.want, tt.str)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("decompressed %d bytes differ from the %d-byte payload", len(got), len(payload))
			}
			if err := rc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestDetectOldV7Tar(t *testing.T) {
	b := buildTar(t, fileEnt("rootfs/x", "x"))
	hdr := b[:tarBlockSize]
	// Turn the ustar header into a V7 one: no magic, version, names.
	for i := 257; i < tarBlockSize; i++ {
		hdr[i] = 0
	}
	for i := 148; i < 156; i++ {
		hdr[i] = ' '
	}
	var sum int
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:], []byte(padOctal(sum, 6)+"\x00 "))
	if c, err := Detect(b); err != nil || c != Uncompressed {
		t.Fatalf("Detect(v7 tar) = %v, %v; want uncompressed", c, err)
	}
	hdr[0] ^= 0xff // a wrong checksum is not a tar
	if _, err := Detect(b); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Detect(bad checksum) error = %v, want InvalidArgument", err)
	}
}

func padOctal(v, width int) string {
	s := []byte{}
	for ; v > 0; v /= 8 {
		s = append([]byte{byte('0' + v%8)}, s...)
	}
	for len(s) < width {
		s = append([]byte{'0'}, s...)
	}
	return string(s)
}

func TestDecompressRejectsGarbage(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "short text", in: []byte("hello")},
		{name: "a block of text", in: bytes.Repeat([]byte("not a tar "), 100)},
		{name: "png", in: append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 600)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, _, err := Decompress(bytes.NewReader(tt.in), allDecoders)
			if err == nil {
				_ = rc.Close()
				t.Fatal("Decompress accepted garbage")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
		})
	}
}

func TestDecompressCorruptStream(t *testing.T) {
	payload := testPayload(t)
	tests := []struct {
		name string
		in   func(testing.TB) []byte
	}{
		{name: "truncated gzip", in: func(t testing.TB) []byte { b := compressGzip(t, payload); return b[:len(b)/2] }},
		{name: "gzip with a flipped byte", in: func(t testing.TB) []byte {
			b := compressGzip(t, payload)
			b[len(b)/2] ^= 0x55
			return b
		}},
		{name: "truncated xz", in: func(t testing.TB) []byte { b := compressXZ(t, payload); return b[:len(b)/2] }},
		{name: "truncated zstd", in: func(t testing.TB) []byte { b := compressZstd(t, payload); return b[:len(b)/2] }},
		{name: "gzip magic only", in: func(testing.TB) []byte { return []byte{0x1f, 0x8b} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, _, err := Decompress(bytes.NewReader(tt.in(t)), allDecoders)
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				_ = rc.Close()
			}
			if err == nil {
				t.Fatal("corrupt stream decoded without error")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
		})
	}
}

// A limit on the compressed input surfaces through the decoder as
// ErrTooLarge, not as a corrupt stream.
func TestDecompressPassesSourceErrors(t *testing.T) {
	in := compressGzip(t, testPayload(t))
	rc, _, err := Decompress(NewLimitedReader(bytes.NewReader(in), int64(len(in)/2)), allDecoders)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("error = %v, want ErrTooLarge and InvalidArgument", err)
	}
}

// A decompression bomb is stopped by limiting the decompressed side.
func TestDecompressBombIsBounded(t *testing.T) {
	bomb := compressGzip(t, make([]byte, 64<<20))
	rc, _, err := Decompress(bytes.NewReader(bomb), allDecoders)
	if err != nil {
		t.Fatalf("Decompress: %v", err)
	}
	defer func() { _ = rc.Close() }()
	n, err := io.Copy(io.Discard, NewLimitedReader(rc, 1<<20))
	if !errors.Is(err, ErrTooLarge) || n != 1<<20 {
		t.Fatalf("copied %d bytes, error %v; want 1 MiB then ErrTooLarge", n, err)
	}
}

func TestDecompressCloseEarly(t *testing.T) {
	rc, _, err := Decompress(bytes.NewReader(compressGzip(t, testPayload(t))), allDecoders)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
	}
}

// BenchmarkDecompressGzipHash measures what import does, inflating and
// hashing, with the read-ahead goroutine and with the decoder inline.
func BenchmarkDecompressGzipHash(b *testing.B) {
	in := compressGzip(b, testPayload(b))
	b.Run("readahead", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			rc, _, err := Decompress(bytes.NewReader(in), allDecoders)
			if err != nil {
				b.Fatal(err)
			}
			h := sha512.New()
			if _, err := io.Copy(h, rc); err != nil {
				b.Fatal(err)
			}
			_ = rc.Close()
		}
	})
	b.Run("inline", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			zr, err := gzip.NewReader(bytes.NewReader(in))
			if err != nil {
				b.Fatal(err)
			}
			h := sha512.New()
			if _, err := io.Copy(h, zr); err != nil {
				b.Fatal(err)
			}
			_ = zr.Close()
		}
	})
}
