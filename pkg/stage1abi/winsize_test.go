package stage1abi

import (
	"bytes"
	"testing"
)

func TestWinsizeFrames(t *testing.T) {
	for _, tt := range []struct {
		name       string
		in         []byte
		rows, cols uint16
		wantErr    bool
	}{
		{name: "24 by 80", in: []byte{0, 24, 0, 80}, rows: 24, cols: 80},
		{name: "largest", in: []byte{0xff, 0xff, 0xff, 0xff}, rows: 65535, cols: 65535},
		{name: "short", in: []byte{0, 24, 0}, wantErr: true},
		{name: "long", in: []byte{0, 24, 0, 80, 0}, wantErr: true},
		{name: "empty", in: nil, wantErr: true},
		{name: "no rows", in: []byte{0, 0, 0, 80}, wantErr: true},
		{name: "no columns", in: []byte{0, 24, 0, 0}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows, cols, err := ParseWinsize(tt.in)
			if (err != nil) != tt.wantErr || rows != tt.rows || cols != tt.cols {
				t.Fatalf("ParseWinsize(%v) = %d, %d, %v; want %d, %d, error %v", tt.in, rows, cols, err, tt.rows, tt.cols, tt.wantErr)
			}
			if err == nil {
				if b := EncodeWinsize(rows, cols); !bytes.Equal(b[:], tt.in) {
					t.Fatalf("EncodeWinsize(%d, %d) = %v, want %v", rows, cols, b, tt.in)
				}
			}
		})
	}
}

func TestParseAppTTY(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    bool
		wantErr bool
	}{
		{name: "true", in: "true", want: true},
		{name: "false", in: "false"},
		{name: "yes", in: "yes", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAppTTY(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("ParseAppTTY(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func FuzzParseWinsize(f *testing.F) {
	f.Add([]byte{0, 24, 0, 80})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, cols, err := ParseWinsize(b)
		if err != nil {
			return
		}
		if rows == 0 || cols == 0 {
			t.Fatalf("accepted %dx%d", rows, cols)
		}
		if e := EncodeWinsize(rows, cols); !bytes.Equal(e[:], b) {
			t.Fatalf("round trip of %v gave %v", b, e)
		}
	})
}

func FuzzParseAppTTY(f *testing.F) {
	f.Add("true")
	f.Add("false")
	f.Add("yes")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseAppTTY(in)
		// Only the two exact words parse, each to itself.
		if (err == nil) != (in == "true" || in == "false") || got != (in == "true") {
			t.Fatalf("ParseAppTTY(%q) = %v, %v", in, got, err)
		}
	})
}
