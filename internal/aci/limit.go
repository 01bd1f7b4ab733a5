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

// LimitError is the error a reader from NewLimitedReader returns once its
// input goes past the limit, for callers that report the limit or the
// setting behind it: errors.As finds it, and it wraps ErrTooLarge. (An
// oversized manifest is ErrTooLarge too, but not a LimitError.)
type LimitError struct {
	Limit int64 // the limit passed, in bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("read past the limit of %d bytes: %v", e.Limit, ErrTooLarge)
}

// Unwrap returns ErrTooLarge.
func (e *LimitError) Unwrap() error { return ErrTooLarge }

// limitedReader is the reader behind NewLimitedReader.
type limitedReader struct {
	r    io.Reader
	max  int64
	read int64
	err  error // sticky once the limit is passed
}

// NewLimitedReader returns a reader that passes r through until max bytes
// have been read and fails with an InvalidArgument error wrapping a
// *LimitError (and so ErrTooLarge) when r holds more. The limit is checked
// on every read, so a stream is stopped as soon as it passes it. Unlike io.LimitReader it does not pretend
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
		l.err = errdefs.With(errdefs.ErrInvalidArgument, &LimitError{Limit: l.max})
		return n, l.err
	}
	return n, err
}
