package podlog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// MaxContent is the longest content of one record. A longer line is split
// into partial records, so a reader never needs more than this (plus the
// header) in memory for one record.
const MaxContent = 16 << 10

// maxLine bounds a record line a Reader accepts. Writers split lines at
// MaxContent; a Reader is lenient with other stage1s' longer records, up to
// a size that still bounds its memory.
const maxLine = 1 << 20

// Record is one line of an app log file.
type Record struct {
	Time   time.Time
	Stream string // stage1abi.LogStreamStdout or stage1abi.LogStreamStderr
	// Partial is set when no newline followed Content in the app's
	// output (yet): the stream's next record continues the line.
	Partial bool
	Content []byte // without the newline; never contains one
}

// Append appends the record's line, with its newline, to dst.
func (r Record) Append(dst []byte) []byte {
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, ' ')
	dst = append(dst, r.Stream...)
	if r.Partial {
		dst = append(dst, ' ', stage1abi.LogTagPartial[0], ' ')
	} else {
		dst = append(dst, ' ', stage1abi.LogTagFull[0], ' ')
	}
	dst = append(dst, r.Content...)
	return append(dst, '\n')
}

// Parse parses one record line, without its newline. Content aliases
// line. A malformed line is errdefs.ErrInvalidArgument.
func Parse(line []byte) (Record, error) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return Record{}, errdefs.InvalidArgument("log record %.40q has no stream", line)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return Record{}, errdefs.InvalidArgument("log record %.40q: time %.40q is not RFC 3339", line, ts)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Record{}, errdefs.InvalidArgument("log record %.40q has no tag", line)
	}
	r := Record{Time: t}
	switch string(stream) {
	case stage1abi.LogStreamStdout:
		r.Stream = stage1abi.LogStreamStdout
	case stage1abi.LogStreamStderr:
		r.Stream = stage1abi.LogStreamStderr
	default:
		return Record{}, errdefs.InvalidArgument("log record %.40q: unknown stream %.20q", line, stream)
	}
	tag, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Record{}, errdefs.InvalidArgument("log record %.40q has no content separator", line)
	}
	switch string(tag) {
	case stage1abi.LogTagFull:
	case stage1abi.LogTagPartial:
		r.Partial = true
	default:
		return Record{}, errdefs.InvalidArgument("log record %.40q: unknown tag %.20q", line, tag)
	}
	if bytes.IndexByte(content, '\n') >= 0 {
		return Record{}, errdefs.InvalidArgument("log record %.40q: content holds a newline", line)
	}
	r.Content = content
	return r, nil
}

// File appends the records of an app's streams to one log file. Each
// Write of a stream becomes whole records written with a single Write on
// the file, so the streams' records never mix within a line. It is safe
// for concurrent use by its streams.
type File struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
	buf []byte
}

// NewFile returns a File appending to w (opened with O_APPEND). now is
// the clock of the records, time.Now if nil.
func NewFile(w io.Writer, now func() time.Time) *File {
	if now == nil {
		now = time.Now
	}
	return &File{w: w, now: now}
}

// Stream returns the writer of one stream (stage1abi.LogStreamStdout or
// LogStreamStderr). Each complete line of a Write becomes a full record;
// bytes after the last newline become a partial record right away, so that
// a prompt shows in the log without waiting for its line to end.
func (f *File) Stream(name string) io.Writer { return stream{f: f, name: name} }

type stream struct {
	f    *File
	name string
}

func (s stream) Write(p []byte) (int, error) {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	r := Record{Time: f.now(), Stream: s.name}
	buf := f.buf[:0]
	for rest := p; len(rest) > 0; {
		line, after, full := bytes.Cut(rest, []byte{'\n'})
		rest = after
		for len(line) > MaxContent {
			r.Partial, r.Content = true, line[:MaxContent]
			buf = r.Append(buf)
			line = line[MaxContent:]
		}
		if !full && len(line) == 0 {
			break
		}
		r.Partial, r.Content = !full, line
		buf = r.Append(buf)
	}
	f.buf = buf
	if len(buf) == 0 {
		return len(p), nil
	}
	if _, err := f.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Reader reads the records of a log file. At the end of the file it
// returns io.EOF and keeps any incomplete last line, so that calling Next
// again after the file grew continues where it stopped (--follow).
type Reader struct {
	br      *bufio.Reader
	pending []byte
	skip    bool // discarding the rest of an overlong line
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 64<<10)} }

// Next returns the next record. io.EOF means no complete record is there
// yet; a malformed or overlong line is errdefs.ErrInvalidArgument, and
// the Reader goes on with the next line.
func (r *Reader) Next() (Record, error) {
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.pending)+len(chunk) > maxLine && !r.skip {
			r.skip = true
			r.pending = r.pending[:0]
		}
		if !r.skip {
			r.pending = append(r.pending, chunk...)
		}
		switch {
		case err == nil:
			if r.skip {
				r.skip = false
				return Record{}, errdefs.InvalidArgument("log record longer than %d bytes", maxLine)
			}
			line := r.pending[:len(r.pending)-1]
			r.pending = r.pending[:0]
			rec, err := Parse(line)
			if err != nil {
				return Record{}, err
			}
			// Content aliases pending, which the next call reuses.
			rec.Content = bytes.Clone(rec.Content)
			return rec, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return Record{}, err
		}
	}
}

// isMalformed reports whether err from Next is about one line only.
func isMalformed(err error) bool { return errors.Is(err, errdefs.ErrInvalidArgument) }
