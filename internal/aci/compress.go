package aci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Compression is the container format wrapped around an image's tar.
type Compression int

// The formats Decompress recognises. The appc spec allows gzip, bzip2 and
// xz; zstd is accepted as an extension.
const (
	Uncompressed Compression = iota // a plain tar
	Gzip
	Bzip2
	XZ
	Zstd
)

// String returns the lowercase name of the format, as used in messages.
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Bzip2:
		return "bzip2"
	case XZ:
		return "xz"
	case Zstd:
		return "zstd"
	default:
		return fmt.Sprintf("compression(%d)", int(c))
	}
}

// Magic numbers at the start of each compressed format.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicXZ    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

const (
	tarBlockSize = 512
	// sniffBufSize is the buffer Decompress reads through; it must hold at
	// least one tar header block so that a plain tar can be recognised.
	sniffBufSize = 64 << 10
	// Chunks handed from the decompressing goroutine to the reader. Three
	// 512 KiB chunks let one be decoded while one is consumed and one is
	// queued, and are large enough that channel hand-offs cost nothing next
	// to inflating and hashing the bytes.
	chunkSize  = 512 << 10
	chunkCount = 3
)

// Detect reports the compression of a stream from its first bytes. head
// should hold at least 512 bytes unless the stream is shorter. It returns
// an InvalidArgument error when head is neither a known compressed format
// nor a tar header.
func Detect(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return Gzip, nil
	case bytes.HasPrefix(head, magicBzip2):
		return Bzip2, nil
	case bytes.HasPrefix(head, magicXZ):
		return XZ, nil
	case bytes.HasPrefix(head, magicZstd):
		return Zstd, nil
	case isTarHeader(head):
		return Uncompressed, nil
	case len(head) == 0:
		return 0, errdefs.InvalidArgument("detect image compression: empty input")
	default:
		return 0, errdefs.InvalidArgument("detect image compression: neither tar, gzip, bzip2, xz nor zstd (starts with %x)", head[:min(len(head), 8)])
	}
}

// isTarHeader reports whether b starts with a tar header block: either one
// carrying the ustar magic (POSIX, GNU and PAX archives), or an old V7
// header, recognised by a correct checksum. An all-zero block is also
// accepted: it is the end-of-archive marker of an empty tar.
func isTarHeader(b []byte) bool {
	if len(b) < tarBlockSize {
		return false
	}
	b = b[:tarBlockSize]
	if bytes.Equal(b[257:262], []byte("ustar")) {
		return true
	}
	if bytes.Count(b, []byte{0}) == tarBlockSize {
		return true
	}
	// The checksum field (148..155) holds the octal sum of all header bytes,
	// the field itself counted as spaces.
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	field := bytes.Trim(b[148:156], " \x00")
	if len(field) == 0 {
		return false
	}
	var want int64
	for _, c := range field {
		if c < '0' || c > '7' {
			return false
		}
		want = want*8 + int64(c-'0')
	}
	return want == sum
}

// A Decoder opens the decoded stream of src; closeDec, when not nil, releases
// the decoder (it does not close src).
type Decoder func(src io.Reader) (dec io.Reader, closeDec func() error, err error)

// Decoders are the decoders of the formats this package does not link
// itself: bzip2, xz and zstd (package decoders has them). Decompress
// decodes gzip and plain tars alone, so that a program that only renders
// stored trees (nscn; a gzip OCI layer) need not link the others.
type Decoders struct {
	Bzip2, XZ, Zstd Decoder
}

func (d Decoders) of(c Compression) Decoder {
	switch c {
	case Bzip2:
		return d.Bzip2
	case XZ:
		return d.XZ
	case Zstd:
		return d.Zstd
	}
	return nil
}

// ErrNoDecoder is Decompress's error for a format whose decoder it was not
// given: an errdefs.ErrNotImplemented. nscn hands the command that met it
// to nscn-fetch, which links every decoder.
var ErrNoDecoder = errors.New("decoder not linked into this program")

// Decompress sniffs the compression of r and returns the tar stream inside
// it, with the compression found. For compressed input the decoding runs in
// its own goroutine, a few chunks ahead of the reader, so that inflating and
// whatever the caller does with the bytes (hashing, extracting) use both
// cores.
//
// Reads from the returned stream fail with an InvalidArgument error when the
// compressed data is corrupt or truncated; an error of r itself is passed
// through unclassified. The caller must Close the stream, which stops the
// goroutine and waits for it (so Close can block until a pending read of r
// returns); Close does not close r. more decodes bzip2, xz and zstd; a
// format it has no decoder for is an ErrNoDecoder error.
func Decompress(r io.Reader, more Decoders) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, sniffBufSize)
	head, err := br.Peek(tarBlockSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read image header: %w", err)
	}
	c, err := Detect(head)
	if err != nil {
		return nil, 0, err
	}
	if c == Uncompressed {
		return io.NopCloser(br), c, nil
	}

	src := &errRecorder{r: br}
	var (
		dec     io.Reader
		closeFn func() error
	)
	switch c {
	case Gzip:
		// klauspost's inflate is a drop-in for compress/gzip and about
		// twice as fast; multistream (concatenated members) stays on, as
		// in gzip(1).
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, 0, classifyDecodeError(c, src, err)
		}
		dec, closeFn = zr, zr.Close
	default:
		open := more.of(c)
		if open == nil {
			return nil, 0, errdefs.With(errdefs.ErrNotImplemented, fmt.Errorf("decompress %s image: %w", c, ErrNoDecoder))
		}
		d, cl, err := open(src)
		if err != nil {
			return nil, 0, classifyDecodeError(c, src, err)
		}
		dec, closeFn = d, cl
	}
	return newReadAhead(dec, closeFn, func(err error) error { return classifyDecodeError(c, src, err) }), c, nil
}

// errRecorder remembers the last error its reader returned, so that an
// error coming out of a decoder can be told apart: the source's own error
// (an I/O error, or ErrTooLarge from a LimitedReader) is passed through,
// anything else means the compressed data is bad.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

func classifyDecodeError(c Compression, src *errRecorder, err error) error {
	if src.err != nil && errors.Is(err, src.err) {
		return fmt.Errorf("decompress %s image: %w", c, err)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("decompress %s image: %w", c, err))
}

// readAhead runs a decoder in a goroutine and hands its output to Read in
// chunks. Buffers circulate between the two sides through two channels, so
// nothing is allocated after start and at most chunkCount chunks are in
// flight.
type readAhead struct {
	filled chan []byte   // decoded chunks, closed when the producer stops
	free   chan []byte   // drained buffers going back to the producer
	stop   chan struct{} // closed by Close: the producer must return
	done   chan struct{} // closed by the producer when it has returned

	// perr is the producer's final error (nil for a clean EOF). It is
	// written before filled is closed and read only after, so the channel
	// close orders the accesses.
	perr     error
	classify func(error) error

	cur, curBuf []byte // unread part of the chunk being consumed, and its buffer

	closed    atomic.Bool
	closeOnce sync.Once
	closeDec  func() error
	closeErr  error
}

func newReadAhead(dec io.Reader, closeDec func() error, classify func(error) error) *readAhead {
	a := &readAhead{
		filled:   make(chan []byte, chunkCount),
		free:     make(chan []byte, chunkCount),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		classify: classify,
		closeDec: closeDec,
	}
	for range chunkCount {
		a.free <- make([]byte, chunkSize)
	}
	go a.produce(dec)
	return a
}

func (a *readAhead) produce(dec io.Reader) {
	defer close(a.done)
	defer close(a.filled)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		// Fill the whole chunk: decoders return small reads, and fewer,
		// larger hand-offs are what makes the pipeline cheap.
		n, err := fill(dec, buf[:cap(buf)])
		if n > 0 {
			select {
			case a.filled <- buf[:n]:
			case <-a.stop:
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				a.perr = a.classify(err)
			}
			return
		}
	}
}

// fill reads into buf until it is full or the reader fails. Unlike
// io.ReadFull it returns the reader's error unchanged, so that a decoder's
// own io.ErrUnexpectedEOF is not confused with a short final chunk.
func fill(r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
			continue
		}
		// A reader that keeps returning 0, nil would spin forever; give up
		// after a burst of them, as bufio does.
		if empty++; empty >= 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// Read implements io.Reader.
func (a *readAhead) Read(p []byte) (int, error) {
	if a.closed.Load() {
		return 0, fmt.Errorf("read decompressed image: %w", os.ErrClosed)
	}
	if err := a.next(); err != nil {
		return 0, err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, so that io.Copy (hashing, say) is handed
// the decoded chunks themselves instead of a copy of them.
func (a *readAhead) WriteTo(w io.Writer) (int64, error) {
	if a.closed.Load() {
		return 0, fmt.Errorf("read decompressed image: %w", os.ErrClosed)
	}
	var total int64
	for {
		if err := a.next(); errors.Is(err, io.EOF) {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(a.cur)
		total += int64(n)
		a.cur = a.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// next makes a.cur non-empty, recycling the drained buffer and waiting for
// the next chunk, or returns the producer's final error (io.EOF when the
// stream ended cleanly).
func (a *readAhead) next() error {
	for len(a.cur) == 0 {
		if a.curBuf != nil {
			// free has room for every buffer, so this never blocks.
			a.free <- a.curBuf
			a.curBuf = nil
		}
		b, ok := <-a.filled
		if !ok {
			if a.perr != nil {
				return a.perr
			}
			return io.EOF
		}
		a.cur, a.curBuf = b, b
	}
	return nil
}

// Close stops the decoding goroutine, waits for it, and releases the
// decoder. It is safe to call more than once.
func (a *readAhead) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		close(a.stop)
		<-a.done
		if a.closeDec != nil {
			if err := a.closeDec(); err != nil {
				a.closeErr = fmt.Errorf("close decompressor: %w", err)
			}
		}
	})
	return a.closeErr
}
