package podlog

import (
	"errors"
	"io"
	"time"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Printer writes records back as the app wrote them: stdout records to
// Stdout, stderr records to Stderr, a newline after each full record.
type Printer struct {
	Stdout, Stderr io.Writer
	// Timestamps starts each line with the time of its first record
	// (RFC 3339 with nanoseconds) and a space.
	Timestamps bool
	// Prefix starts each line (after the time), e.g. "[web] " when the
	// logs of several apps are shown together.
	Prefix string
	// midLine records, per stream, that the last record was partial.
	midLine [2]bool
	buf     []byte
}

// Print writes one record.
func (p *Printer) Print(r Record) error {
	w, i := p.Stdout, 0
	if r.Stream == stage1abi.LogStreamStderr {
		w, i = p.Stderr, 1
	}
	b := p.buf[:0]
	if !p.midLine[i] {
		if p.Timestamps {
			b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, ' ')
		}
		b = append(b, p.Prefix...)
	}
	b = append(b, r.Content...)
	if !r.Partial {
		b = append(b, '\n')
	}
	p.midLine[i] = r.Partial
	p.buf = b
	_, err := w.Write(b)
	return err
}

// Merger prints the records of several log files in time order, each
// through its own function.
type Merger struct {
	srcs []*source
}

type source struct {
	r    *Reader
	out  func(Record) error
	head *Record
}

// Add adds a log file to merge.
func (m *Merger) Add(r *Reader, out func(Record) error) {
	m.srcs = append(m.srcs, &source{r: r, out: out})
}

// Drain prints every complete record the files hold now, oldest first
// (records with equal times in the order the files were added), and
// returns once every file is at its end; call it again when they may have
// grown. A malformed line is passed to bad and skipped.
func (m *Merger) Drain(bad func(error)) error {
	for {
		var next *source
		for _, s := range m.srcs {
			if s.head == nil {
				if err := s.fill(bad); err != nil {
					return err
				}
			}
			if s.head != nil && (next == nil || s.head.Time.Before(next.head.Time)) {
				next = s
			}
		}
		if next == nil {
			return nil
		}
		r := *next.head
		next.head = nil
		if err := next.out(r); err != nil {
			return err
		}
	}
}

// fill reads the source's next record into head, if there is one.
func (s *source) fill(bad func(error)) error {
	for {
		r, err := s.r.Next()
		switch {
		case err == nil:
			s.head = &r
			return nil
		case errors.Is(err, io.EOF):
			return nil
		case isMalformed(err):
			bad(err)
		default:
			return err
		}
	}
}
