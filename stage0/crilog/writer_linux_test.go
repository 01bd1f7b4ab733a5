package crilog

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/podlog"
)

func TestOpenLogStaysBeneath(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rel string
		ok        bool
	}{
		{"new file", "c.log", true},
		{"in a subdirectory", "sub/0.log", true},
		{"in a new subdirectory", "new/dir/0.log", true},
		{"symlink as the file", "link.log", false},
		{"symlink as a directory", "linkdir/x.log", false},
		{"dot-dot", "../x.log", false},
		{"dot-dot inside", "sub/../../x.log", false},
		{"absolute", "/tmp/x.log", false},
		{"the directory itself", ".", false},
		{"a FIFO", "fifo.log", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openLog(dir, tc.rel)
			if f != nil {
				_ = f.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("openLog(%q): err %v, want ok %v", tc.rel, err, tc.ok)
			}
			if _, err := os.Lstat(filepath.Join(outside, "target")); err == nil {
				t.Fatal("the log went through the symlink")
			}
		})
	}
}

func TestOpenFIFORefusesOthers(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rel string
		ok        bool
	}{
		{"fifo", "fifo", true},
		{"regular file", "file", false},
		{"symlink to a fifo", "link", false},
		{"missing", "none", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openFIFO(dir, tc.rel)
			if f != nil {
				_ = f.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("openFIFO(%q): err %v, want ok %v", tc.rel, err, tc.ok)
			}
		})
	}
}

// testWriter opens a writer over two new FIFOs and runs it; it returns
// the writer ends' paths, the log path and Run's result.
func testWriter(t *testing.T) (cfg Config, done chan error) {
	t.Helper()
	pod, logs := t.TempDir(), t.TempDir()
	for _, n := range []string{"out", "err"} {
		if err := unix.Mkfifo(filepath.Join(pod, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg = Config{
		PodDir: pod, StdoutFIFO: "out", StderrFIFO: "err", LogDir: logs, LogPath: "c.log",
		Control: filepath.Join(t.TempDir(), "ctl", "c.sock"),
	}
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.pollPeriod = 20 * time.Millisecond
	done = make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	return cfg, done
}

func openWriteEnd(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0) //nolint:gosec // G304: the test's own FIFO
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readRecords(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p) //nolint:gosec // G304: the test's own log file
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	r := podlog.NewReader(f)
	var out []string
	for {
		rec, err := r.Next()
		if err != nil {
			return out
		}
		tag := "F"
		if rec.Partial {
			tag = "P"
		}
		out = append(out, rec.Stream+" "+tag+" "+string(rec.Content))
	}
}

func TestWriterCopiesReopensAndEnds(t *testing.T) {
	cfg, done := testWriter(t)
	// No writer yet: the log writer waits, it does not take the empty
	// FIFO for an end of file.
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the writer ended before the app wrote: %v", err)
	default:
	}
	out := openWriteEnd(t, filepath.Join(cfg.PodDir, "out"))
	errw := openWriteEnd(t, filepath.Join(cfg.PodDir, "err"))
	if _, err := out.WriteString("one\ntwo "); err != nil {
		t.Fatal(err)
	}
	if _, err := errw.WriteString("oops\n"); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(cfg.LogDir, cfg.LogPath)
	waitFor(t, func() bool { return len(readRecords(t, logPath)) == 3 })

	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Request(ctx, cfg.Control, ReqReopen); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("reopen made no new file: %v", err)
	}
	if _, err := out.WriteString("three\n" + strings.Repeat("x", podlog.MaxContent+1) + "\n"); err != nil {
		t.Fatal(err)
	}
	_, _ = out.Close(), errw.Close()
	// A writer that has ended has removed its socket: done as well.
	if err := Request(ctx, cfg.Control, ReqWait); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"stdout F three", "stdout P " + strings.Repeat("x", podlog.MaxContent), "stdout F x"}
	if got := readRecords(t, logPath); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("new file: %.200q, want %.200q", got, want)
	}
	old := readRecords(t, logPath+".1")
	if len(old) != 3 || !contains(old, "stdout F one") || !contains(old, "stdout P two ") || !contains(old, "stderr F oops") {
		t.Errorf("renamed file: %q", old)
	}
	if _, err := os.Lstat(cfg.Control); err == nil {
		t.Error("control socket left behind")
	}
}

// A FIFO removed before any app opened it (the pod is gone) ends the
// writer.
func TestWriterEndsWhenFIFOsGo(t *testing.T) {
	cfg, done := testWriter(t)
	for _, n := range []string{"out", "err"} {
		if err := os.Remove(filepath.Join(cfg.PodDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer outlived its FIFOs")
	}
}

func TestArgvRoundTrip(t *testing.T) {
	cfg := Config{PodDir: "/p", StdoutFIFO: "a/out", StderrFIFO: "a/err", LogDir: "/l", LogPath: "x/0.log", Control: "/run/c.sock"}
	once := Config{PodDir: "/p", StdoutFIFO: "a/out", StderrFIFO: "a/err", StdinFIFO: "a/in", StdinOnce: true, Control: "/run/c.sock"}
	for _, want := range []Config{cfg, once} {
		got, err := parseArgv(want.Argv()[1:])
		if err != nil || got != want {
			t.Fatalf("parseArgv(Argv) = %+v, %v; want %+v", got, err, want)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing flag", []string{"--pod-dir=/p"}},
		{"relative pod dir", Config{PodDir: "p", StdoutFIFO: "o", StderrFIFO: "e", LogDir: "/l", LogPath: "x", Control: "/c"}.Argv()[1:]},
		{"extra argument", append(cfg.Argv()[1:], "extra")},
		{"unknown flag", append(cfg.Argv()[1:], "--bogus=1")},
		{"stdin once without stdin", append(cfg.Argv()[1:], "--stdin-once")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseArgv(tc.args); err == nil {
				t.Fatalf("parseArgv(%q) accepted", tc.args)
			}
		})
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 250 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("timed out")
}

// An attached client gets the output as it is written and feeds the
// app's stdin; its end of input ends the attach, not the app's stdin.
func TestWriterAttach(t *testing.T) {
	pod, logs := t.TempDir(), t.TempDir()
	for _, n := range []string{"out", "err", "in"} {
		if err := unix.Mkfifo(filepath.Join(pod, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		PodDir: pod, StdoutFIFO: "out", StderrFIFO: "err", StdinFIFO: "in", LogDir: logs, LogPath: "c.log",
		Control: filepath.Join(t.TempDir(), "c.sock"),
	}
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.pollPeriod = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	// The app's side: its stdin, its output.
	appIn, err := os.OpenFile(filepath.Join(pod, "in"), os.O_RDONLY, 0) //nolint:gosec // G304: the test's FIFO
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = appIn.Close() }()
	out := openWriteEnd(t, filepath.Join(pod, "out"))
	errw := openWriteEnd(t, filepath.Join(pod, "err"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inR, inW := io.Pipe()
	var gotOut, gotErr safeBuffer
	attached := make(chan error, 1)
	go func() { attached <- Attach(ctx, cfg.Control, inR, &gotOut, &gotErr) }()
	waitFor(t, func() bool { w.attached.mu.Lock(); defer w.attached.mu.Unlock(); return len(w.attached.conns) == 1 })
	if _, err := inW.Write([]byte("echo hello\n")); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 11)
	if _, err := io.ReadFull(appIn, line); err != nil || string(line) != "echo hello\n" {
		t.Fatalf("the app read %q, %v", line, err)
	}
	_, _ = out.WriteString("hello\n")
	_, _ = errw.WriteString("warn\n")
	waitFor(t, func() bool { return gotOut.String() == "hello\n" && gotErr.String() == "warn\n" })
	_ = inW.Close()
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	// The app's stdin is still open: nothing to read, no end of file.
	rc, err := appIn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var perr error
	if err := rc.Control(func(fd uintptr) {
		n, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200) //nolint:gosec // G115: an fd
	}); err != nil || perr != nil || n != 0 {
		t.Fatalf("the app's stdin after the attach: poll %d, %v, %v; want nothing to read", n, err, perr)
	}
	_, _ = out.Close(), errw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readRecords(t, filepath.Join(logs, "c.log")); len(got) != 2 {
		t.Fatalf("log: %q", got)
	}
}

// TestWriterStdinOnce: with StdinOnce, an attach with no input leaves
// the app's stdin open; the first attach with input, when it ends,
// closes it (the app reads its end of file); a later attach gets the
// output only.
func TestWriterStdinOnce(t *testing.T) {
	pod := t.TempDir()
	for _, n := range []string{"out", "err", "in"} {
		if err := unix.Mkfifo(filepath.Join(pod, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		PodDir: pod, StdoutFIFO: "out", StderrFIFO: "err", StdinFIFO: "in", StdinOnce: true,
		Control: filepath.Join(t.TempDir(), "c.sock"),
	}
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.pollPeriod = 20 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	appIn, err := os.OpenFile(filepath.Join(pod, "in"), os.O_RDONLY, 0) //nolint:gosec // G304: the test's FIFO
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = appIn.Close() }()
	out := openWriteEnd(t, filepath.Join(pod, "out"))
	errw := openWriteEnd(t, filepath.Join(pod, "err"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	attachedCount := func(n int) func() bool {
		return func() bool { w.attached.mu.Lock(); defer w.attached.mu.Unlock(); return len(w.attached.conns) == n }
	}

	// An output-only attach comes and goes: the input stays open.
	var watched safeBuffer
	watchCtx, stopWatch := context.WithCancel(ctx)
	watching := make(chan error, 1)
	go func() { watching <- Attach(watchCtx, cfg.Control, nil, &watched, nil) }()
	waitFor(t, attachedCount(1))
	_, _ = out.WriteString("seen\n")
	waitFor(t, func() bool { return watched.String() == "seen\n" })
	stopWatch()
	if err := <-watching; err != nil {
		t.Fatal(err)
	}
	waitFor(t, attachedCount(0))
	if w.stdinFile() == nil {
		t.Fatal("an attach without input closed the app's stdin")
	}

	// The first attach with input: what it sends, then the end of file.
	if err := Attach(ctx, cfg.Control, strings.NewReader("only once\n"), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(appIn)
	if err != nil || string(b) != "only once\n" {
		t.Fatalf("the app read %q, %v; want the input, then its end", b, err)
	}

	// A later attach still gets the output; its input goes nowhere.
	var later safeBuffer
	laterIn, laterW := io.Pipe()
	again := make(chan error, 1)
	go func() { again <- Attach(ctx, cfg.Control, laterIn, &later, nil) }()
	waitFor(t, attachedCount(1))
	_, _ = laterW.Write([]byte("dropped\n"))
	_, _ = out.WriteString("after\n")
	waitFor(t, func() bool { return later.String() == "after\n" })
	_ = laterW.Close()
	if err := <-again; err != nil {
		t.Fatal(err)
	}
	_, _ = out.Close(), errw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
