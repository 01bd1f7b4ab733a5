package podlog

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
)

var t0 = time.Date(2026, 11, 23, 15, 4, 5, 123456789, time.UTC)

// clock returns t0, t0+1s, t0+2s, … on successive calls.
func clock() func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return t0.Add(time.Duration(n-1) * time.Second)
	}
}

func TestAppendParse(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		line string
	}{
		{
			name: "full stdout", rec: Record{Time: t0, Stream: "stdout", Content: []byte("hello world")},
			line: "2026-11-23T15:04:05.123456789Z stdout F hello world\n",
		},
		{
			name: "partial stderr", rec: Record{Time: t0, Stream: "stderr", Partial: true, Content: []byte("name? ")},
			line: "2026-11-23T15:04:05.123456789Z stderr P name? \n",
		},
		{
			name: "empty line", rec: Record{Time: t0, Stream: "stdout", Content: []byte{}},
			line: "2026-11-23T15:04:05.123456789Z stdout F \n",
		},
		{
			name: "whole second drops the fraction", rec: Record{Time: t0.Truncate(time.Second), Stream: "stdout", Content: []byte("x")},
			line: "2026-11-23T15:04:05Z stdout F x\n",
		},
		{
			name: "local time is written in UTC", rec: Record{Time: t0.In(time.FixedZone("X", 3600)), Stream: "stdout", Content: []byte("x")},
			line: "2026-11-23T15:04:05.123456789Z stdout F x\n",
		},
		{
			name: "binary and carriage return kept", rec: Record{Time: t0, Stream: "stdout", Content: []byte("a\rb\x00 \tc")},
			line: "2026-11-23T15:04:05.123456789Z stdout F a\rb\x00 \tc\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.rec.Append(nil))
			if got != tt.line {
				t.Fatalf("Append = %q, want %q", got, tt.line)
			}
			back, err := Parse([]byte(strings.TrimSuffix(tt.line, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			if !back.Time.Equal(tt.rec.Time) || back.Stream != tt.rec.Stream || back.Partial != tt.rec.Partial || !bytes.Equal(back.Content, tt.rec.Content) {
				t.Fatalf("Parse = %+v, want %+v", back, tt.rec)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{name: "empty", line: ""},
		{name: "time only", line: "2026-11-23T15:04:05Z"},
		{name: "bad time", line: "yesterday stdout F x"},
		{name: "time without zone", line: "2026-11-23T15:04:05 stdout F x"},
		{name: "unknown stream", line: "2026-11-23T15:04:05Z stdin F x"},
		{name: "no tag", line: "2026-11-23T15:04:05Z stdout"},
		{name: "unknown tag", line: "2026-11-23T15:04:05Z stdout X x"},
		{name: "no content separator", line: "2026-11-23T15:04:05Z stdout F"},
		{name: "newline in content", line: "2026-11-23T15:04:05Z stdout F a\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := Parse([]byte(tt.line)); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Parse(%q) = %+v, %v; want an invalid-argument error", tt.line, r, err)
			}
		})
	}
}

func TestStreamWrite(t *testing.T) {
	long := strings.Repeat("a", MaxContent)
	tests := []struct {
		name   string
		writes []struct{ stream, data string }
		want   string
	}{
		{
			name: "lines, a partial tail, its end",
			writes: []struct{ stream, data string }{
				{"stdout", "one\ntwo\nthr"},
				{"stdout", "ee\n"},
			},
			want: "2026-11-23T15:04:05.123456789Z stdout F one\n" +
				"2026-11-23T15:04:05.123456789Z stdout F two\n" +
				"2026-11-23T15:04:05.123456789Z stdout P thr\n" +
				"2026-11-23T15:04:06.123456789Z stdout F ee\n",
		},
		{
			name: "streams kept apart",
			writes: []struct{ stream, data string }{
				{"stdout", "out\n"},
				{"stderr", "err\n\n"},
			},
			want: "2026-11-23T15:04:05.123456789Z stdout F out\n" +
				"2026-11-23T15:04:06.123456789Z stderr F err\n" +
				"2026-11-23T15:04:06.123456789Z stderr F \n",
		},
		{
			name:   "empty write writes nothing",
			writes: []struct{ stream, data string }{{"stdout", ""}},
			want:   "",
		},
		{
			name:   "overlong line split",
			writes: []struct{ stream, data string }{{"stdout", long + "b\n"}},
			want: "2026-11-23T15:04:05.123456789Z stdout P " + long + "\n" +
				"2026-11-23T15:04:05.123456789Z stdout F b\n",
		},
		{
			name:   "line of exactly the maximum",
			writes: []struct{ stream, data string }{{"stderr", long + "\n"}},
			want:   "2026-11-23T15:04:05.123456789Z stderr F " + long + "\n",
		},
		{
			name:   "overlong partial tail",
			writes: []struct{ stream, data string }{{"stdout", long + "b"}},
			want: "2026-11-23T15:04:05.123456789Z stdout P " + long + "\n" +
				"2026-11-23T15:04:05.123456789Z stdout P b\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := NewFile(&out, clock())
			for _, w := range tt.writes {
				n, err := f.Stream(w.stream).Write([]byte(w.data))
				if err != nil || n != len(w.data) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if out.String() != tt.want {
				t.Fatalf("log:\n%q\nwant:\n%q", out.String(), tt.want)
			}
		})
	}
}

// chunkWriter records the size of each Write, to check that one stream
// Write is one file Write.
type chunkWriter struct {
	bytes.Buffer
	writes int
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestStreamWriteIsOneFileWrite(t *testing.T) {
	var out chunkWriter
	if _, err := NewFile(&out, clock()).Stream("stdout").Write([]byte("a\nb\nc\nd")); err != nil {
		t.Fatal(err)
	}
	if out.writes != 1 {
		t.Fatalf("%d writes, want 1", out.writes)
	}
}

// TestRoundTrip checks that printing the records of what was written
// gives the bytes back, stream by stream.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
	}{
		{name: "lines", writes: []string{"a\nb\n"}},
		{name: "split lines", writes: []string{"a", "b\nc", "", "\n"}},
		{name: "no final newline", writes: []string{"prompt> "}},
		{name: "empty lines", writes: []string{"\n\n", "\n"}},
		{name: "long", writes: []string{strings.Repeat("x", 3*MaxContent+5) + "\n" + strings.Repeat("y", MaxContent)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			f := NewFile(&log, nil)
			var want bytes.Buffer
			for _, w := range tt.writes {
				want.WriteString(w)
				if _, err := f.Stream("stderr").Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			p := &Printer{Stdout: &stdout, Stderr: &stderr}
			r := NewReader(&log)
			for {
				rec, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Print(rec); err != nil {
					t.Fatal(err)
				}
			}
			if stderr.String() != want.String() || stdout.Len() != 0 {
				t.Fatalf("printed stdout %q stderr %q, want stderr %q", stdout.String(), stderr.String(), want.String())
			}
		})
	}
}

// growing is a file being appended to: reads see only what was added.
type growing struct{ data []byte }

func (g *growing) Read(p []byte) (int, error) {
	if len(g.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.data)
	g.data = g.data[n:]
	return n, nil
}

func TestReaderIncompleteLine(t *testing.T) {
	g := &growing{data: []byte("2026-11-23T15:04:05Z stdout F one\n2026-11-23T15:04:05Z std")}
	r := NewReader(g)
	if rec, err := r.Next(); err != nil || string(rec.Content) != "one" {
		t.Fatalf("first Next = %q, %v", rec.Content, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next on an incomplete line = %v, want EOF", err)
	}
	g.data = []byte("err P two\n")
	rec, err := r.Next()
	if err != nil || string(rec.Content) != "two" || rec.Stream != "stderr" || !rec.Partial {
		t.Fatalf("Next after the line was completed = %+v, %v", rec, err)
	}
}

func TestReaderSkipsBadLines(t *testing.T) {
	long := strings.Repeat("z", maxLine+10)
	r := NewReader(strings.NewReader("garbage\n" + long + "\n2026-11-23T15:04:05Z stdout F ok\n"))
	var bad int
	for {
		rec, err := r.Next()
		if errors.Is(err, errdefs.ErrInvalidArgument) {
			bad++
			continue
		}
		if err != nil {
			t.Fatalf("Next = %v after %d bad lines", err, bad)
		}
		if string(rec.Content) != "ok" || bad != 2 {
			t.Fatalf("got %q after %d bad lines, want ok after 2", rec.Content, bad)
		}
		return
	}
}

func TestPrinter(t *testing.T) {
	recs := []Record{
		{Time: t0, Stream: "stdout", Partial: true, Content: []byte("a")},
		{Time: t0.Add(time.Second), Stream: "stderr", Content: []byte("e")},
		{Time: t0.Add(2 * time.Second), Stream: "stdout", Content: []byte("b")},
		{Time: t0.Add(3 * time.Second), Stream: "stdout", Content: []byte("c")},
	}
	tests := []struct {
		name             string
		p                Printer
		wantOut, wantErr string
	}{
		{name: "plain", wantOut: "ab\nc\n", wantErr: "e\n"},
		{
			name: "timestamps and prefix", p: Printer{Timestamps: true, Prefix: "[web] "},
			wantOut: "2026-11-23T15:04:05.123456789Z [web] ab\n2026-11-23T15:04:08.123456789Z [web] c\n",
			wantErr: "2026-11-23T15:04:06.123456789Z [web] e\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			p := tt.p
			p.Stdout, p.Stderr = &out, &errb
			for _, r := range recs {
				if err := p.Print(r); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != tt.wantOut || errb.String() != tt.wantErr {
				t.Fatalf("stdout %q stderr %q, want %q %q", out.String(), errb.String(), tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestMergerTimeOrder(t *testing.T) {
	a := "2026-11-23T15:04:01Z stdout F a1\n2026-11-23T15:04:03Z stdout F a3\nbad\n"
	b := "2026-11-23T15:04:02Z stdout F b2\n2026-11-23T15:04:03Z stderr F b3\n"
	var got []string
	var m Merger
	for _, src := range []struct{ name, log string }{{"a", a}, {"b", b}} {
		m.Add(NewReader(strings.NewReader(src.log)), func(r Record) error {
			got = append(got, src.name+":"+string(r.Content))
			return nil
		})
	}
	var bad int
	if err := m.Drain(func(error) { bad++ }); err != nil {
		t.Fatal(err)
	}
	want := "a:a1 b:b2 a:a3 b:b3"
	if strings.Join(got, " ") != want || bad != 1 {
		t.Fatalf("merged %v with %d bad lines, want %s with 1", got, bad, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("2026-11-23T15:04:05.123456789Z stdout F hello"))
	f.Add([]byte("2026-11-23T15:04:05Z stderr P "))
	f.Add([]byte("2026-11-23T15:04:05+01:00 stdout F x y z"))
	f.Add([]byte("x stdout F"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Parse(line)
		if err != nil {
			return
		}
		// A record that parsed must write back to a line that parses
		// to the same record.
		again := r.Append(nil)
		r2, err := Parse(again[:len(again)-1])
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but its line %q does not parse: %v", line, r, again, err)
		}
		if !r2.Time.Equal(r.Time) || r2.Stream != r.Stream || r2.Partial != r.Partial || !bytes.Equal(r2.Content, r.Content) {
			t.Fatalf("round trip of %q: %+v != %+v", line, r2, r)
		}
	})
}

// FuzzRoundTrip writes data to a stream in two writes split at cut, reads
// the log back and checks that printing it gives data again.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("line\npartial"), uint16(3))
	f.Add([]byte("\n\n\r\x00"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		c := int(cut) % (len(data) + 1)
		var log bytes.Buffer
		s := NewFile(&log, nil).Stream("stdout")
		for _, part := range [][]byte{data[:c], data[c:]} {
			if _, err := s.Write(part); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		p := &Printer{Stdout: &out, Stderr: io.Discard}
		r := NewReader(&log)
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read back the log of %q: %v", data, err)
			}
			if err := p.Print(rec); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("wrote %q, printed back %q", data, out.Bytes())
		}
	})
}
