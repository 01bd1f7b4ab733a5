package aci

import (
	"errors"
	"fmt"
	"io"

	"github.com/nosecone/nscn/internal/errdefs"
)

// ErrTooLarge is the domain sentinel behind the error a LimitedReader
// returns once its input goes past the limit. The error also carries
// errdefs.ErrInvalidArgument.
var ErrTooLarge = errors.New("input larger than allowed")

// limitedReader is the reader behind NewLimitedReader.
type limitedReader struct {
	r    io.Reader
	max  int64
	read int64
	err  error // sticky once the limit is passed
}

// NewLimitedReader returns a reader that passes r through until max bytes
// have been read and fails with an InvalidArgument error wrapping
// ErrTooLarge when r holds more. Unlike io.LimitReader it does not pretend
// the stream ended: a decompression bomb must fail, not be silently cut
// into a short but plausible tar. A limit of 0 or less means no limit.
func NewLimitedReader(r io.Reader, limit int64) io.Reader {
	if limit <= 0 {
		return r
	}
	return &limitedReader{r: r, max: limit}
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	// Ask for one byte more than what remains, so that a stream of exactly
	// max bytes ends with a clean EOF while a longer one is caught.
	if room := l.max - l.read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.max {
		n -= int(l.read - l.max)
		l.read = l.max
		l.err = errdefs.With(errdefs.ErrInvalidArgument,
			fmt.Errorf("read past the limit of %d bytes: %w", l.max, ErrTooLarge))
		return n, l.err
	}
	return n, err
}
