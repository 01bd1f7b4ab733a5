package hostpid

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncodeParse(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want []byte
	}{
		{name: "request", f: Frame{Kind: KindRequest, App: "nginx-1"}, want: []byte("Rnginx-1")},
		{name: "signal", f: Frame{Kind: KindSignal, Signal: 15}, want: []byte{'S', 15}},
		{name: "started", f: Frame{Kind: KindStarted, PID: 4242}, want: []byte{'P', 0, 0, 0x10, 0x92}},
		{name: "error", f: Frame{Kind: KindError, Msg: "no such app"}, want: []byte("Eno such app")},
		{name: "exit code", f: Frame{Kind: KindExit, Code: 3}, want: []byte{'X', 3, 0}},
		{name: "exit signal", f: Frame{Kind: KindExit, Signal: 9}, want: []byte{'X', 0, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.f)
			if err != nil || !bytes.Equal(b, tt.want) {
				t.Fatalf("Encode(%+v) = %v, %v; want %v", tt.f, b, err, tt.want)
			}
			got, err := Parse(b)
			if err != nil || got != tt.f {
				t.Fatalf("Parse(%v) = %+v, %v; want %+v", b, got, err, tt.f)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "empty", in: nil},
		{name: "unknown kind", in: []byte("Zx")},
		{name: "request without a name", in: []byte("R")},
		{name: "request with a path", in: []byte("R../other")},
		{name: "request upper case", in: []byte("RNginx")},
		{name: "request with a NUL", in: []byte("Ra\x00b")},
		{name: "signal zero", in: []byte{'S', 0}},
		{name: "signal too high", in: []byte{'S', 65}},
		{name: "signal two bytes", in: []byte{'S', 1, 2}},
		{name: "started short", in: []byte{'P', 1}},
		{name: "started pid zero", in: []byte{'P', 0, 0, 0, 0}},
		{name: "started pid too big", in: []byte{'P', 0xff, 0, 0, 0}},
		{name: "error empty", in: []byte("E")},
		{name: "error not utf-8", in: []byte{'E', 0xff}},
		{name: "exit with code and signal", in: []byte{'X', 1, 9}},
		{name: "exit short", in: []byte{'X', 1}},
		{name: "too long", in: append([]byte("E"), bytes.Repeat([]byte("x"), MaxFrame)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, err := Parse(tt.in); !errors.Is(err, ErrFrame) {
				t.Fatalf("Parse(%q) = %+v, %v; want %v", tt.in, f, err, ErrFrame)
			}
		})
	}
}

func TestEncodeCutsLongMessages(t *testing.T) {
	b, err := Encode(Frame{Kind: KindError, Msg: strings.Repeat("é", MaxFrame)})
	if err != nil || len(b) > MaxFrame {
		t.Fatalf("Encode of a long message = %d bytes, %v", len(b), err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range [][]byte{[]byte("Rnginx"), {'S', 15}, {'P', 0, 0, 1, 0}, []byte("Eboom"), {'X', 0, 9}, {'X', 1, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("Parse(%q) = %v, not of class ErrFrame", b, err)
			}
			return
		}
		again, err := Encode(fr)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Encode(Parse(%q)) = %q, %v", b, again, err)
		}
	})
}
