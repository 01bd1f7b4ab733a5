// Package decoders holds the bzip2, xz and zstd decoders that
// aci.Decompress takes in an aci.Decoders: the formats of an ACI as fetched
// (appc allows gzip, bzip2 and xz; zstd is accepted as an extension) and of
// zstd OCI layers. Package aci decodes only gzip itself, so that a program
// that renders stored images and does not import them (the nscn binary)
// links none of these decoders: their package initialisation (zstd's CRC
// tables above all) is a tenth of nscn's (Documentation/performance.md).
// It imports nothing of nscn, so that aci's own tests can use it.
//
// It runs in stage0 and needs nothing.
package decoders

import (
	"compress/bzip2"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// zstdMaxWindow bounds the memory a hostile zstd frame can make the
// decoder allocate. 128 MiB is the largest window the zstd CLI decodes
// without --long, so every image made with default settings fits.
const zstdMaxWindow = 128 << 20

// Bzip2 decodes a bzip2 stream.
func Bzip2(src io.Reader) (io.Reader, func() error, error) {
	return bzip2.NewReader(src), nil, nil
}

// XZ decodes an xz stream. The default dictionary capacity (8 MiB) bounds
// memory whatever the stream header claims.
func XZ(src io.Reader) (io.Reader, func() error, error) {
	xr, err := xz.NewReader(src)
	if err != nil {
		return nil, nil, err
	}
	return xr, nil, nil
}

// Zstd decodes a zstd stream. Concurrency 1 keeps the decoder synchronous:
// aci's read-ahead goroutine already runs it ahead of the reader.
func Zstd(src io.Reader) (io.Reader, func() error, error) {
	zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, err
	}
	return zr, func() error { zr.Close(); return nil }, nil
}
