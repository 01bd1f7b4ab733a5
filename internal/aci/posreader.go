package aci

import (
	"errors"
	"io"
)

// posReader reads an io.ReaderAt sequentially through a buffer and seeks
// by moving its position. It is what archive/tar reads when the archive is
// a file: the tar reader skips the contents extraction hands to workers
// with Seek (the workers read them with ReadAt, from the offset pos
// reports), and the headers of consecutive small entries come out of one
// buffered read instead of a read each.
//
// When the archive file can be mapped (mapArchive), Read copies from the
// mapping instead: the contents between the headers, which the tar reader
// skips, are then neither read nor copied here (the buffered reads copied
// every small file's content, and 64 KiB after each large one, to read
// the headers around them).
type posReader struct {
	ra     io.ReaderAt
	pos    int64 // the offset of the next byte Read returns
	buf    []byte
	bufOff int64 // the offset of buf[0]
	n      int   // valid bytes in buf
	// mapped, when set, is the whole archive file mapped in memory
	// (mapArchive), which Read copies from instead of reading through buf.
	mapped []byte
}

// errShrunk is the error of a read from the mapped archive past the end
// of a file that was truncated while mapped (a fault the extraction
// goroutine turns into a panic, see extract).
var errShrunk = errors.New("read archive: the file shrank while it was read")

func newPosReader(ra io.ReaderAt, start int64, bufSize int) *posReader {
	return &posReader{ra: ra, pos: start, buf: make([]byte, bufSize)}
}

// Read implements io.Reader.
func (p *posReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if p.mapped != nil {
		return p.readMapped(b)
	}
	if p.pos < p.bufOff || p.pos >= p.bufOff+int64(p.n) {
		if len(b) >= len(p.buf) {
			// A large read (an entry's content read through the tar
			// reader) goes straight to the caller.
			n, err := p.ra.ReadAt(b, p.pos)
			p.pos += int64(n)
			if n > 0 && errors.Is(err, io.EOF) {
				err = nil // reported by the next Read
			}
			return n, err
		}
		n, err := p.ra.ReadAt(p.buf, p.pos)
		p.bufOff, p.n = p.pos, n
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		// A short read with io.EOF is the end of the archive: what came
		// is served first, and the next Read gets the EOF.
	}
	k := copy(b, p.buf[p.pos-p.bufOff:p.n])
	p.pos += int64(k)
	return k, nil
}

// Seek implements io.Seeker, without io.SeekEnd, which the tar reader does
// not use. Seeking past the end is allowed; the next Read reports io.EOF.
func (p *posReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += p.pos
	default:
		return 0, errors.New("seek archive: only from the start or the current position")
	}
	if offset < 0 {
		return 0, errors.New("seek archive: negative position")
	}
	p.pos = offset
	return offset, nil
}

// seekRecorder is the errRecorder of a posReader that also seeks, so that
// archive/tar can skip contents.
type seekRecorder struct {
	*errRecorder
	s io.Seeker
}

func (s seekRecorder) Seek(offset int64, whence int) (int64, error) {
	return s.s.Seek(offset, whence)
}

// readMapped is Read from the mapping. A fault on it, which the runtime
// turns into a panic on a goroutine that asked for it with
// debug.SetPanicOnFault, is the file shrinking under the mapping: an
// error, not a crash.
func (p *posReader) readMapped(b []byte) (n int, err error) {
	if p.pos >= int64(len(p.mapped)) {
		return 0, io.EOF
	}
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			n, err = 0, errShrunk
		}
	}()
	n = copy(b, p.mapped[p.pos:])
	p.pos += int64(n)
	return n, nil
}
