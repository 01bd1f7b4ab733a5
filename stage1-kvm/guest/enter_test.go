package guest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrames(t *testing.T) {
	tests := []struct {
		name    string
		typ     byte
		payload []byte
	}{
		{name: "empty", typ: FrameStdinEOF},
		{name: "data", typ: FrameStdout, payload: []byte("hello\n")},
		{name: "largest", typ: FrameRequest, payload: bytes.Repeat([]byte{'x'}, MaxFrame)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteFrame(&b, tt.typ, tt.payload); err != nil {
				t.Fatal(err)
			}
			typ, p, err := ReadFrame(&b)
			if err != nil || typ != tt.typ || !bytes.Equal(p, tt.payload) {
				t.Fatalf("ReadFrame = %q, %d bytes, %v; want %q, %d bytes", typ, len(p), err, tt.typ, len(tt.payload))
			}
			if b.Len() != 0 {
				t.Fatalf("%d bytes left after the frame", b.Len())
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	if err := WriteFrame(io.Discard, FrameStdout, make([]byte, MaxFrame+1)); err == nil {
		t.Error("WriteFrame took a payload above MaxFrame")
	}
	tests := []struct {
		name string
		in   string
	}{
		{name: "no header", in: ""},
		{name: "short header", in: "O\x00\x00"},
		{name: "short payload", in: "O\x00\x00\x00\x05abc"},
		{name: "too long", in: "O\x7f\xff\xff\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ReadFrame(strings.NewReader(tt.in)); err == nil {
				t.Fatalf("ReadFrame(%q) succeeded", tt.in)
			}
		})
	}
	if _, _, err := ReadFrame(strings.NewReader("")); !errors.Is(err, io.EOF) {
		t.Errorf("ReadFrame at the end of the stream: %v, want io.EOF", err)
	}
}

func TestFrameWriterChunks(t *testing.T) {
	var b bytes.Buffer
	data := bytes.Repeat([]byte("0123456789"), MaxData/5)
	n, err := FrameWriter{W: &b, Type: FrameStderr}.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	var got []byte
	frames := 0
	for b.Len() > 0 {
		typ, p, err := ReadFrame(&b)
		if err != nil || typ != FrameStderr || len(p) > MaxData {
			t.Fatalf("frame %d: %q, %d bytes, %v", frames, typ, len(p), err)
		}
		got = append(got, p...)
		frames++
	}
	if !bytes.Equal(got, data) || frames != 2 {
		t.Fatalf("%d frames carrying %d bytes, want 2 carrying %d", frames, len(got), len(data))
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("O\x00\x00\x00\x02hi"))
	f.Add([]byte("X\x00\x00\x00\x010"))
	f.Add([]byte("R\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			typ, p, err := ReadFrame(r)
			if err != nil {
				return
			}
			var b bytes.Buffer
			if err := WriteFrame(&b, typ, p); err != nil {
				t.Fatalf("a frame read cannot be written again: %v", err)
			}
			if !bytes.Equal(b.Bytes(), in[:b.Len()]) {
				t.Fatalf("frame %q does not encode as it was read", typ)
			}
			in = in[b.Len():]
		}
	})
}
