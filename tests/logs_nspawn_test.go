//go:build functional && nspawn

package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// podDir returns the directory of the env's only pod.
func podDir(t *testing.T, e *env) string {
	t.Helper()
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*-*-*-*-*"))
	if len(pods) != 1 {
		t.Fatalf("want one pod, have %v", pods)
	}
	return pods[0]
}

func TestNspawnLogsTwoApps(t *testing.T) {
	e := newEnv(t)
	// a writes first on both streams and ends with a line without a
	// newline; b writes a second later.
	r := e.nspawnRun(
		busybox(t), "--name=a", "--exec=/bin/sh", "--", "-c", "echo a-out; echo a-err >&2; sleep 2; printf a-partial", "---",
		busybox(t), "--name=b", "--exec=/bin/sh", "--", "-c", "sleep 1; echo b-out; echo b-err >&2")
	if r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	// The terminal of run still gets the output.
	for _, want := range []string{"a-out\n", "b-out\n", "a-partial"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("run's stdout %q lacks %q", r.stdout, want)
		}
	}
	for _, want := range []string{"a-err\n", "b-err\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("run's stderr %q lacks %q", r.stderr, want)
		}
	}
	uuid := nspawnOnlyPod(t, e)

	// The record on disk is the pod's journal (no log files), with each
	// app's unit, identifier and stream priority.
	if _, err := os.Stat(filepath.Join(podDir(t, e), "logs")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the pod has log files (logs/: %v), want its journal only", err)
	}
	out := journalctl(t, "--directory="+journalDir(t, e, uuid), "--output=json", "_TRANSPORT=stdout")
	for _, want := range []string{
		`"_SYSTEMD_UNIT":"app-a.service"`, `"_SYSTEMD_UNIT":"app-b.service"`,
		`"SYSLOG_IDENTIFIER":"a"`, `"MESSAGE":"b-err"`, `"MESSAGE":"a-partial"`,
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("journal lacks %s:\n%s", want, out)
		}
	}

	tests := []struct {
		name             string
		args             []string
		wantOut, wantErr string
	}{
		{name: "every app, prefixed, in time order", wantOut: "[a] a-out\n[b] b-out\n[a] a-partial", wantErr: "[a] a-err\n[b] b-err\n"},
		{name: "one app", args: []string{"--app=b"}, wantOut: "b-out\n", wantErr: "b-err\n"},
		{name: "since an hour", args: []string{"--app=a", "--since=1h"}, wantOut: "a-out\na-partial", wantErr: "a-err\n"},
		{name: "since a time to come", args: []string{"--since=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.ok(append(append([]string{"logs"}, tt.args...), uuid)...)
			if r.stdout != tt.wantOut || r.stderr != tt.wantErr {
				t.Fatalf("logs printed stdout %q stderr %q, want %q %q", r.stdout, r.stderr, tt.wantOut, tt.wantErr)
			}
		})
	}
	t.Run("timestamps", func(t *testing.T) {
		r := e.ok("logs", "--timestamps", "--app=b", uuid)
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+Z b-out\n$`).MatchString(r.stdout) {
			t.Fatalf("logs --timestamps printed %q", r.stdout)
		}
	})
	t.Run("unknown app", func(*testing.T) {
		r := e.fails(`no app "c"`, "logs", "--app=c", uuid)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2", r.code)
		}
	})
	t.Run("bad since", func(*testing.T) {
		e.fails("--since", "logs", "--since=soon", uuid)
	})
	// The logs go with the pod.
	assertPodsGone(t, e)
	e.fails("does not exist", "logs", uuid)
}

func TestNspawnLogsFollow(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 10*time.Second, []string{"first"}, nspawnRunArgs(t, busybox(t), "--name=app", "--exec=/bin/sh", "--", "-c",
		"echo first; sleep 2; echo second; echo err >&2; sleep 1; echo third")...)
	uuid := p.uuid
	// Read while the pod runs, without --follow: what is there so far.
	r := e.ok("logs", uuid)
	if r.stdout != "first\n" {
		t.Fatalf("logs of the running pod printed %q, want the first line only", r.stdout)
	}
	// --follow prints what comes next and returns when the pod exits.
	start := time.Now()
	r = e.ok("logs", "--follow", uuid)
	if r.stdout != "first\nsecond\nthird\n" || r.stderr != "err\n" {
		t.Fatalf("logs --follow printed stdout %q stderr %q", r.stdout, r.stderr)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("logs --follow returned after %v, before the pod wrote its last line", time.Since(start))
	}
	if err := p.wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// After the pod exited, the same again.
	if r := e.ok("logs", uuid); r.stdout != "first\nsecond\nthird\n" {
		t.Fatalf("logs of the exited pod printed %q", r.stdout)
	}
	assertPodsGone(t, e)
}

func TestNspawnInteractivePipe(t *testing.T) {
	e := newEnv(t)
	args := []string{
		"--insecure-options=image", "run", "--net=host", "--stage1-path=" + nspawnACI(t), "--interactive",
		busybox(t), "--exec=/bin/sh", "--", "-c", "cat; echo done >&2; exit 3",
	}
	r := e.runIn([]byte("hi\nthere\n"), args...)
	if r.code != 3 || r.stdout != "hi\nthere\n" || !strings.Contains(r.stderr, "done") {
		t.Fatalf("exit %d stdout %q stderr %q; want 3, the input echoed", r.code, r.stdout, r.stderr)
	}
	// The app's output is recorded as without --interactive.
	if r := e.ok("logs", nspawnOnlyPod(t, e)); r.stdout != "hi\nthere\n" {
		t.Fatalf("logs printed %q", r.stdout)
	}
	assertPodsGone(t, e)

	t.Run("empty stdin", func(t *testing.T) {
		r := e.runIn([]byte{}, args...)
		if r.code != 3 || r.stdout != "" {
			t.Fatalf("exit %d stdout %q; want 3 and nothing", r.code, r.stdout)
		}
		assertPodsGone(t, e)
	})
	t.Run("without --interactive stdin is not read", func(t *testing.T) {
		r := e.runIn([]byte("hi\n"), "--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t),
			busybox(t), "--exec=/bin/sh", "--", "-c", "cat; echo eof")
		if r.code != 0 || r.stdout != "eof\n" {
			t.Fatalf("exit %d stdout %q", r.code, r.stdout)
		}
		assertPodsGone(t, e)
	})
	t.Run("two apps refused", func(t *testing.T) {
		e.fails("exactly one app", "--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t), "--interactive",
			busybox(t), "--name=a", "---", busybox(t), "--name=b")
	})
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ptySession is nscn running under script(1), which gives it a pseudo
// terminal of 33 rows and 91 columns: in is what is typed, out what the
// terminal shows.
type ptySession struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	all strings.Builder
}

// startPty starts nscn with args in a ptySession.
func startPty(t *testing.T, e *env, args ...string) *ptySession {
	t.Helper()
	return startPtyWith(t, e, "", args...)
}

// startPtyWith is startPty with a shell command line run in the
// background in the terminal's session before nscn starts.
func startPtyWith(t *testing.T, e *env, background string, args ...string) *ptySession {
	t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatalf("script (util-linux) is needed for the terminal tests: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c := e.cmd(ctx, args...)
	quoted := make([]string, len(c.Args))
	for i, a := range c.Args {
		quoted[i] = shellQuote(a)
	}
	line := "stty cols 91 rows 33; "
	if background != "" {
		line += "(" + background + ") & "
	}
	line += "exec " + strings.Join(quoted, " ")
	s := &ptySession{cmd: exec.CommandContext(ctx, "script", "-qefc", line, "/dev/null")}
	s.cmd.Env = c.Env
	var err error
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewReader(stdout)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor reads the terminal until its output holds want.
func (s *ptySession) waitFor(t *testing.T, want string) {
	t.Helper()
	for !strings.Contains(s.all.String(), want) {
		b, err := s.out.ReadByte()
		if err != nil {
			t.Fatalf("terminal output ended before %q: %q (%v)", want, s.all.String(), err)
		}
		s.all.WriteByte(b)
	}
}

// wait reads the rest of the output and returns script's exit status,
// which is the command's (-e).
func (s *ptySession) wait(t *testing.T) int {
	t.Helper()
	rest, _ := io.ReadAll(s.out)
	s.all.Write(rest)
	_ = s.in.Close()
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestNspawnInteractiveTerminal(t *testing.T) {
	e := newEnv(t)
	run := []string{"--insecure-options=image", "run", "--net=host", "--stage1-path=" + nspawnACI(t), "--interactive", busybox(t), "--exec=/bin/sh", "--", "-c"}
	t.Run("input, window size, exit status", func(t *testing.T) {
		s := startPty(t, e, append(run, `echo tty=$(tty) size=$(stty size); echo ready; read x; echo got:$x; exit 7`)...)
		s.waitFor(t, "ready")
		if _, err := io.WriteString(s.in, "hello\r"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "got:hello")
		if code := s.wait(t); code != 7 {
			t.Fatalf("exit %d, want 7; terminal: %q", code, s.all.String())
		}
		out := s.all.String()
		if !strings.Contains(out, "tty=/dev/") || strings.Contains(out, "tty=not a tty") || !strings.Contains(out, "size=33 91") {
			t.Fatalf("the app's terminal is not run's: %q", out)
		}
	})
	t.Run("window size change reaches the app", func(t *testing.T) {
		// The resize happens in the terminal of nscn run once the test
		// creates the trigger file.
		trigger := filepath.Join(t.TempDir(), "resize")
		resize := "while [ ! -e " + shellQuote(trigger) + " ]; do sleep 0.1; done; stty cols 50 rows 20 < /dev/tty"
		s := startPtyWith(t, e, resize, append(run, `trap 'echo resized=$(stty size); exit 0' WINCH; echo ready; while :; do sleep 0.1; done`)...)
		s.waitFor(t, "ready")
		if err := os.WriteFile(trigger, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "resized=20 50")
		if code := s.wait(t); code != 0 {
			t.Fatalf("exit %d, want 0; terminal: %q", code, s.all.String())
		}
	})
	t.Run("ctrl-c reaches the app", func(t *testing.T) {
		s := startPty(t, e, append(run, `trap 'echo got-sigint; exit 9' INT; echo ready; while :; do sleep 0.1; done`)...)
		s.waitFor(t, "ready")
		if _, err := io.WriteString(s.in, "\x03"); err != nil {
			t.Fatal(err)
		}
		s.waitFor(t, "got-sigint")
		if code := s.wait(t); code != 9 {
			t.Fatalf("exit %d, want 9; terminal: %q", code, s.all.String())
		}
	})
	assertPodsGone(t, e)
}

// TestNspawnLogsAtOnce: the journal has every line of apps that write and
// exit at once, while the pod's journald may still be starting: the pod
// ends only once journald has read the apps' streams (the helper's
// barrier, Documentation/pod-lifecycle.md), the last line included, with
// more lines than a socket's buffer holds and with a last line that has
// no newline.
func TestNspawnLogsAtOnce(t *testing.T) {
	e := newEnv(t)
	var want strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&want, "[many] %d\n", i)
	}
	tests := []struct {
		name    string
		apps    []string
		wantOut string
	}{
		{name: "one line", apps: []string{busybox(t), "--name=echo", "--exec=/bin/echo", "--", "the last line"}, wantOut: "the last line\n"},
		{
			name: "two apps",
			apps: []string{
				busybox(t), "--name=many", "--exec=/bin/sh", "--", "-c", "seq 1 20000", "---",
				busybox(t), "--name=partial", "--exec=/bin/sh", "--", "-c", "printf 'no newline'",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.nspawnRun(tt.apps...)
			if r.code != 0 {
				t.Fatalf("run exit %d: %s", r.code, r.stderr)
			}
			uuid := nspawnOnlyPod(t, e)
			r = e.ok("logs", uuid)
			switch {
			case tt.wantOut != "":
				if r.stdout != tt.wantOut {
					t.Fatalf("logs printed %q, want %q", r.stdout, tt.wantOut)
				}
			default:
				// The two apps' lines interleave in time, and
				// partial's, with no newline, runs into the next.
				const partial = "[partial] no newline"
				if n := strings.Count(r.stdout, partial); n != 1 {
					t.Fatalf("logs printed partial's line %d times", n)
				}
				if many := strings.Replace(r.stdout, partial, "", 1); many != want.String() {
					t.Fatalf("logs printed %d bytes of many's %d, ending %q", len(many), want.Len(), tail(many))
				}
			}
			e.ok("rm", uuid)
		})
	}
}

// tail is the end of s, for a message.
func tail(s string) string {
	if len(s) > 40 {
		return s[len(s)-40:]
	}
	return s
}
