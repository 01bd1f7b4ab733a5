package fetch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/pgp"
	"github.com/nosecone/nscn/internal/progress"
)

// nameScanLimit bounds how much of a signed image's tar is decompressed,
// before it is imported, to find its name in the manifest. A manifest
// written first (as `tar -c manifest rootfs` does) is found in the first
// kilobytes; actool writes it last, so it is found here only in images
// smaller than the bound, and otherwise the name is checked at import,
// before the image is committed.
const nameScanLimit = 8 << 20

// verified is an image file whose signature checked out.
type verified struct {
	signer *pgp.Signer
	sum    []byte // sha256 of the file's bytes, as verified
}

// verifyFile checks v's signature over the bytes of file as fetched, the
// compressed file that appc signatures cover, reading it once and
// decompressing nothing: an image whose signature does not verify costs one
// read of its compressed bytes, and nothing is written. The returned sum
// lets the import check that it read the same bytes.
//
// Whether the signer is trusted for the image depends on the image's name,
// which is in the manifest inside the archive. A root key is trusted for
// every name. For a key trusted for some prefixes only, the manifest is
// looked for in the first nameScanLimit bytes of the tar (decompressed, not
// written), so that an image named outside the key's prefixes is refused
// before the import; when the manifest is further in, the import's check
// refuses it, before it is committed. The import checks the name it read
// in every case.
func (f *Fetcher) verifyFile(ctx context.Context, file imageFile, size int64, source string, v *pgp.Verifier) (*verified, error) {
	h := sha256.New()
	r := io.TeeReader(file, h)
	var bar *progress.Bar
	if f.Progress != nil {
		bar = progress.New(f.Progress, "verify "+filepath.Base(source), size)
		r = bar.Wrap(r)
	}
	signer, err := v.Verify(ctx, r)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", source, err)
	}
	ok := &verified{signer: signer, sum: h.Sum(nil)}
	if signer.Root() {
		return ok, nil
	}
	name, err := f.scanName(ctx, file)
	if err != nil {
		// Not found near the start, or not readable there: the import
		// reads the whole image and decides.
		f.logger().Debug("image name not found before import; checked at import", "image", source, "reason", err)
		return ok, nil
	}
	if err := signer.Authorize(name); err != nil {
		return nil, fmt.Errorf("image %s: %w", source, err)
	}
	return ok, nil
}

// scanName reads the image's name from its manifest, decompressing at most
// nameScanLimit bytes of its tar and writing nothing.
func (f *Fetcher) scanName(ctx context.Context, file io.ReadSeeker) (string, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("read image: %w", err)
	}
	tr, _, err := aci.Decompress(&ctxReader{ctx: ctx, r: file}, Decoders)
	if err != nil {
		return "", err
	}
	defer func() { _ = tr.Close() }()
	m, _, err := aci.ReadManifest(aci.NewLimitedReader(tr, nameScanLimit))
	if err != nil {
		return "", err
	}
	return m.Name.String(), nil
}

// explainLimit adds to an error of the uncompressed size limit which
// setting it is and what its value is.
func (f *Fetcher) explainLimit(err error) error {
	var le *aci.LimitError
	if !errors.As(err, &le) {
		return err
	}
	return fmt.Errorf("the image is larger than %s uncompressed, the limit set by --max-image-size "+
		"(raise it to fetch a larger image you trust): %w", progress.Bytes(le.Limit), err)
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
