//go:build functional

package registry

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestCRIStdinOnce attaches with crictl to a container created with
// stdin and stdin_once, as `kubectl run -i --rm` does: an attach without
// input leaves the app's input open; the first attach with input hands
// it what the client sends, and its end is the app's end of file, so the
// container, a cat, exits by itself.
func TestCRIStdinOnce(t *testing.T) {
	h := newCRIHarness(t)
	logDir := filepath.Join(h.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	podID, podCfg := h.runPod("once", map[string]any{"log_directory": logDir})
	ctrID := h.startContainer(podID, podCfg, "cat", map[string]any{
		"command":    []string{"/bin/sh", "-c", "echo started; cat; echo stdin-closed"},
		"stdin":      true,
		"stdin_once": true,
		"log_path":   "cat.log",
	})
	logFile := filepath.Join(logDir, "cat.log")
	readLog := func() string {
		b, _ := os.ReadFile(logFile) //nolint:gosec // G304: the test's log file
		return string(b)
	}
	waitUntil(t, 30*time.Second, func() bool { return strings.Contains(readLog(), " stdout F started\n") })

	running := func() bool {
		out, _ := h.crictl(true, "ps", "-q", "--state", "running", "--name", "cat")
		return strings.TrimSpace(out) == ctrID
	}

	// An attach without input (crictl attach, no -i) ends with its
	// client: the app's input stays open.
	{
		cmd := h.crictlCmd(context.Background(), "attach", ctrID)
		var o testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		time.Sleep(time.Second)
		if !running() {
			t.Fatalf("an attach without input ended the container's input:\n%s", readLog())
		}
	}

	// The first attach with input: the app reads it, then its end.
	{
		cmd := h.crictlCmd(context.Background(), "attach", "-i", ctrID)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var o testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(in, "sent-once\n"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 30*time.Second, func() bool { return strings.Contains(o.String(), "sent-once\n") })
		_ = in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("crictl attach -i: %v\n%s", err, o.String())
		}
	}
	if st := h.waitExited(ctrID); st.ExitCode != 0 {
		t.Fatalf("exit code %d", st.ExitCode)
	}
	if l := readLog(); !strings.Contains(l, " stdout F sent-once\n") || !strings.Contains(l, " stdout F stdin-closed\n") {
		t.Fatalf("log of the stdin_once container:\n%s", l)
	}

	h.crictl(true, "rm", ctrID)
	h.crictl(true, "stopp", podID)
	h.crictl(true, "rmp", podID)
}

// TestCRITTY attaches with `crictl attach -it`, on a terminal, to a
// shell created with tty and stdin, as `kubectl run -it` and `kubectl
// attach -it` do: the shell is on a terminal of the pod's own, whose size
// is the client's and follows its resizes; what is typed reaches it and
// its answers come back; its output is in the log as stdout only; and
// the shell's exit ends the attach.
func TestCRITTY(t *testing.T) {
	h := newCRIHarness(t)
	logDir := filepath.Join(h.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	podID, podCfg := h.runPod("tty", map[string]any{"log_directory": logDir})
	ctrID := h.startContainer(podID, podCfg, "sh", map[string]any{
		"command":  []string{"/bin/sh"},
		"stdin":    true,
		"tty":      true,
		"log_path": "sh.log",
	})
	waitUntil(t, 30*time.Second, func() bool {
		out, _ := h.crictl(true, "ps", "-q", "--state", "running", "--name", "sh")
		return strings.TrimSpace(out) == ctrID
	})

	term := startOnTerminal(t, 31, 97, crictlBin(t), "--runtime-endpoint", "unix://"+h.socket, "attach", "-it", ctrID)
	term.send(t, "test -t 0 && test -t 1 && test -t 2 && echo on-a-$((6*7))-terminal; stty size\n")
	term.expect(t, "on-a-42-terminal\r\n31 97\r\n")
	term.resize(t, 40, 120)
	// The client passes the resize on when it gets its SIGWINCH: ask
	// until the shell sees it.
	waitUntil(t, 30*time.Second, func() bool {
		term.send(t, "stty size\n")
		time.Sleep(300 * time.Millisecond)
		return strings.Contains(term.output(), "40 120\r\n")
	})
	term.send(t, "echo to-the-$((2+3))-log; echo to-$((1+1))-stderr >&2; exit 3\n")
	if err := term.wait(t); err != nil {
		t.Logf("crictl attach: %v", err)
	}
	if o := term.output(); !strings.Contains(o, "to-the-5-log\r\n") || !strings.Contains(o, "to-2-stderr\r\n") {
		t.Fatalf("terminal:\n%q", o)
	}
	if st := h.waitExited(ctrID); st.ExitCode != 3 {
		t.Fatalf("exit code %d", st.ExitCode)
	}
	b, _ := os.ReadFile(filepath.Join(logDir, "sh.log")) //nolint:gosec // G304: the test's log file
	if !strings.Contains(string(b), " stdout F to-the-5-log\r\n") || !strings.Contains(string(b), " stdout F to-2-stderr\r\n") || strings.Contains(string(b), " stderr ") {
		t.Fatalf("log of the tty container (all of it stdout):\n%s", b)
	}

	// tty and stdin_once (kubectl run -it --rm): the end of the first
	// attach's input is the terminal's end of file, and the shell exits
	{
		onceID := h.startContainer(podID, podCfg, "once", map[string]any{
			"command":    []string{"/bin/sh"},
			"stdin":      true,
			"stdin_once": true,
			"tty":        true,
			"log_path":   "once.log",
		})
		cmd := h.crictlCmd(context.Background(), "attach", "-i", onceID)
		cmd.Stdin = strings.NewReader("echo typed-$((3*3))\n")
		var o testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &o, &o
		if err := cmd.Run(); err != nil {
			t.Fatalf("crictl attach -i: %v\n%s", err, o.String())
		}
		if st := h.waitExited(onceID); st.ExitCode != 0 {
			t.Fatalf("exit code after the input's end %d", st.ExitCode)
		}
		b, _ := os.ReadFile(filepath.Join(logDir, "once.log")) //nolint:gosec // G304: the test's log file
		if !strings.Contains(string(b), "typed-9\r\n") {
			t.Fatalf("log of the stdin_once tty container:\n%s", b)
		}
		h.crictl(true, "rm", onceID)
	}

	// tty on a container created without one is refused
	{
		plainID := h.startContainer(podID, podCfg, "plain", map[string]any{
			"command":  []string{"/bin/sh", "-c", "exec sleep 600"},
			"stdin":    true,
			"log_path": "plain.log",
		})
		if _, stderr := h.crictl(false, "attach", "-it", plainID); !strings.Contains(stderr, "without tty") {
			t.Fatalf("attach -it to a container without tty: %s", stderr)
		}
		h.crictl(true, "stop", plainID)
		h.crictl(true, "rm", plainID)
	}

	h.crictl(true, "rm", ctrID)
	h.crictl(true, "stopp", podID)
	h.crictl(true, "rmp", podID)
}

// terminal is a command running on a new pseudo-terminal, driven from
// its master.
type terminal struct {
	ptm, pts *os.File
	cmd      *exec.Cmd
	out      testutil.SyncBuffer
	copied   chan struct{}
}

// startOnTerminal starts argv on a new terminal of rows by cols.
func startOnTerminal(t *testing.T, rows, cols uint16, argv ...string) *terminal {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pts.Close() })
	term := &terminal{ptm: ptm, pts: pts, copied: make(chan struct{})}
	term.resize(t, rows, cols)
	term.cmd = exec.Command(argv[0], argv[1:]...) //nolint:gosec // G204: the test's own command
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = pts, pts, pts
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = term.cmd.Process.Kill() })
	go func() {
		defer close(term.copied)
		_, _ = io.Copy(&term.out, ptm)
	}()
	return term
}

func (term *terminal) send(t *testing.T, s string) {
	t.Helper()
	if _, err := term.ptm.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func (term *terminal) output() string { return term.out.String() }

// expect waits until the output holds want.
func (term *terminal) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(term.output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the terminal never showed %q:\n%q", want, term.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resize sets the terminal's size: its foreground process gets SIGWINCH.
func (term *terminal) resize(t *testing.T, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(term.pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the command to end, a minute at most.
func (term *terminal) wait(t *testing.T) error {
	t.Helper()
	werr := make(chan error, 1)
	go func() { werr <- term.cmd.Wait() }()
	select {
	case err := <-werr:
		// The output is copied until every holder of the slave has
		// closed it: the test holds it too, for its resizes.
		_ = term.pts.Close()
		select {
		case <-term.copied:
		case <-time.After(5 * time.Second):
		}
		return err
	case <-time.After(60 * time.Second):
		_ = term.cmd.Process.Kill()
		t.Fatalf("%v did not end:\n%q", term.cmd.Args, term.output())
		return nil
	}
}
