package crilog

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestParseResize(t *testing.T) {
	for _, tt := range []struct {
		name       string
		in         string
		rows, cols uint16
		wantErr    bool
	}{
		{name: "24 by 80", in: "resize 24 80", rows: 24, cols: 80},
		{name: "largest", in: "resize 65535 65535", rows: 65535, cols: 65535},
		{name: "too large", in: "resize 65536 80", wantErr: true},
		{name: "zero", in: "resize 0 80", wantErr: true},
		{name: "negative", in: "resize -1 80", wantErr: true},
		{name: "one number", in: "resize 24", wantErr: true},
		{name: "three numbers", in: "resize 24 80 1", wantErr: true},
		{name: "other request", in: "attach", wantErr: true},
		{name: "double space", in: "resize  24 80", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rows, cols, err := parseResize(tt.in)
			if (err != nil) != tt.wantErr || rows != tt.rows || cols != tt.cols {
				t.Fatalf("parseResize(%q) = %d, %d, %v", tt.in, rows, cols, err)
			}
		})
	}
}

func FuzzParseResize(f *testing.F) {
	f.Add("resize 24 80")
	f.Add("resize 0 0")
	f.Add("resize 99999 1")
	f.Fuzz(func(t *testing.T, line string) {
		rows, cols, err := parseResize(line)
		if err == nil && (rows == 0 || cols == 0) {
			t.Fatalf("parseResize(%q) accepted %dx%d", line, rows, cols)
		}
	})
}

// TestWriterResize: a resize request becomes a frame on the app's resize
// FIFO; what is not a FIFO at its path fails the writer's start.
func TestWriterResize(t *testing.T) {
	pod := t.TempDir()
	for _, n := range []string{"out", "err", "resize"} {
		if err := unix.Mkfifo(filepath.Join(pod, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{PodDir: pod, StdoutFIFO: "out", StderrFIFO: "err", ResizeFIFO: "resize", Control: filepath.Join(t.TempDir(), "c.sock")}
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.pollPeriod = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	helper, err := os.OpenFile(filepath.Join(pod, "resize"), os.O_RDONLY, 0) //nolint:gosec // G304: the test's FIFO
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Resize(ctx, cfg.Control, 31, 97); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, stage1abi.WinsizeFrameLen)
	if _, err := io.ReadFull(helper, b); err != nil {
		t.Fatal(err)
	}
	if rows, cols, err := stage1abi.ParseWinsize(b); err != nil || rows != 31 || cols != 97 {
		t.Fatalf("frame %v: %d, %d, %v", b, rows, cols, err)
	}
	if err := Request(ctx, cfg.Control, "resize 0 80"); err == nil {
		t.Fatal("a zero size was accepted")
	}
	out, errw := openWriteEnd(t, filepath.Join(pod, "out")), openWriteEnd(t, filepath.Join(pod, "err"))
	_, _ = out.Close(), errw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		make func(p string) error
	}{
		{name: "regular file", make: func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{name: "symbolic link", make: func(p string) error { return os.Symlink(filepath.Join(pod, "out"), p) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(pod, "resize-"+tt.name)
			if err := tt.make(p); err != nil {
				t.Fatal(err)
			}
			bad := cfg
			bad.ResizeFIFO = filepath.Base(p)
			bad.Control = filepath.Join(t.TempDir(), "c.sock")
			if w, err := Open(bad); err == nil {
				w.close()
				t.Fatalf("Open accepted a %s at the resize FIFO's path", tt.name)
			}
		})
	}
}
