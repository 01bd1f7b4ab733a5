//go:build functional

package registry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestCRIStdio drives a container's standard I/O through nscn cri with
// crictl: the output in the kubelet's log file in the CRI format (crictl
// logs reads it) while the container runs and after a restart of the
// server, complete when the container has exited; exec on a terminal
// (crictl exec -it) and with stdin; port forwarding into the pod's
// network namespace (crictl port-forward).
func TestCRIStdio(t *testing.T) {
	h := newCRIHarness(t)
	logDir := filepath.Join(h.dir, "logs")
	if err := os.MkdirAll(filepath.Join(logDir, "main"), 0o755); err != nil {
		t.Fatal(err)
	}
	podID, podCfg := h.runPod("stdio", map[string]any{"log_directory": logDir})
	ctrID := h.startContainer(podID, podCfg, "main", map[string]any{
		"command":  []string{"/bin/sh", "-c", "echo out-line; echo err-line >&2; exec httpd -f -p 8080 -h /srv"},
		"log_path": "main/0.log",
	})
	logFile := filepath.Join(logDir, "main", "0.log")

	// log file
	{
		waitUntil(t, 30*time.Second, func() bool {
			b, _ := os.ReadFile(logFile) //nolint:gosec // G304: the test's log file
			return strings.Contains(string(b), " stdout F out-line\n") && strings.Contains(string(b), " stderr F err-line\n")
		})
		st, err := os.Lstat(logFile)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o007 != 0 {
			t.Fatalf("log file %s: %v, mode %v", logFile, err, st.Mode())
		}
		stdout, stderr := h.crictl(true, "logs", ctrID)
		if stdout != "out-line\n" || !strings.HasSuffix(stderr, "\nerr-line\n") {
			t.Fatalf("crictl logs: stdout %q, stderr %q", stdout, stderr)
		}
	}

	// exec on a terminal
	{
		out := crictlOnTerminal(t, h.socket, "exec", "-it", ctrID, "/bin/sh", "-c", "test -t 0 && test -t 1 && echo on-a-terminal; stty size")
		// The size is the client's terminal's (crictlOnTerminal's).
		if !strings.Contains(out, "on-a-terminal\r\n") || !strings.Contains(out, "31 97\r\n") {
			t.Fatalf("crictl exec -it printed %q", out)
		}
	}

	// exec with stdin
	{
		cmd := h.crictlCmd(context.Background(), "exec", "-i", ctrID, "/bin/sh", "-c", "cat; echo status >&2; exit 7")
		cmd.Stdin = strings.NewReader("piped-in\n")
		var o, eb strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &eb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || o.String() != "piped-in\n" || !strings.Contains(eb.String(), "status") {
			t.Fatalf("crictl exec -i: %v, stdout %q, stderr %q", err, o.String(), eb.String())
		}
	}

	// port-forward
	{
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pf := h.crictlCmd(ctx, "port-forward", podID, strconv.Itoa(port)+":8080")
		var pfOut strings.Builder
		pf.Stdout, pf.Stderr = &pfOut, &pfOut
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = pf.Wait() }()
		var body string
		waitUntil(t, 30*time.Second, func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/message") //nolint:noctx // a test's loopback GET
			if err != nil {
				return false
			}
			defer func() { _ = resp.Body.Close() }()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == http.StatusOK
		})
		if body != "from the second layer" {
			t.Fatalf("port-forward: %q\n%s", body, pfOut.String())
		}
	}

	// attach to a shell created with stdin: the input reaches it, its
	// output comes back, and the end of the client's input ends the
	// attach, not the shell's input
	{
		shID := h.startContainer(podID, podCfg, "shell", map[string]any{
			"command":  []string{"/bin/sh"},
			"stdin":    true,
			"log_path": "shell.log",
		})
		for _, word := range []string{"first-attach", "second-attach"} {
			cmd := h.crictlCmd(context.Background(), "attach", "-i", shID)
			in, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var o testutil.SyncBuffer
			cmd.Stdout, cmd.Stderr = &o, &o
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(in, "echo "+word+"\n"); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 30*time.Second, func() bool { return strings.Contains(o.String(), word+"\n") })
			_ = in.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("crictl attach: %v\n%s", err, o.String())
			}
		}
		b, _ := os.ReadFile(filepath.Join(logDir, "shell.log")) //nolint:gosec // G304: the test's log file
		if !strings.Contains(string(b), " stdout F first-attach\n") || !strings.Contains(string(b), " stdout F second-attach\n") {
			t.Fatalf("shell log:\n%s", b)
		}
		if out, _ := h.crictl(true, "ps", "-q", "--state", "running", "--name", "shell"); strings.TrimSpace(out) != shID {
			t.Fatalf("the shell ended with an attach: %q", out)
		}
		h.crictl(true, "stop", shID)
		h.crictl(true, "rm", shID)
	}

	// the log writer outlives the server
	{
		h.restart()
		h.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "echo after-restart > /proc/$(pidof httpd)/fd/1")
		waitUntil(t, 30*time.Second, func() bool {
			b, _ := os.ReadFile(logFile) //nolint:gosec // G304: the test's log file
			return strings.Contains(string(b), " stdout F after-restart\n")
		})
	}

	// complete when exited
	{
		h.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "echo last-words > /proc/$(pidof httpd)/fd/2")
		h.crictl(true, "stop", ctrID)
		// As a kubelet does: the status says exited, then the log is read.
		if out, _ := h.crictl(true, "inspect", "-o", "json", ctrID); !strings.Contains(out, "CONTAINER_EXITED") {
			t.Fatalf("inspect after stop:\n%s", out)
		}
		b, _ := os.ReadFile(logFile) //nolint:gosec // G304: the test's log file
		if !strings.Contains(string(b), " stderr F last-words\n") {
			t.Fatalf("log of the stopped container:\n%s", b)
		}
		waitUntil(t, 10*time.Second, func() bool {
			_, err := os.Lstat(filepath.Join("/run/nscn/cri-log", ctrID+".sock"))
			return err != nil
		})
	}

	// a symbolic link at the log path: the start fails, nothing is
	// written where it points
	{
		outside := filepath.Join(t.TempDir(), "target")
		if err := os.Symlink(outside, filepath.Join(logDir, "evil.log")); err != nil {
			t.Fatal(err)
		}
		evilID := h.createContainer(podID, podCfg, "evil", map[string]any{
			"command":  []string{"/bin/sh", "-c", "echo escaped"},
			"log_path": "evil.log",
		})
		if _, stderr := h.crictl(false, "start", evilID); !strings.Contains(stderr, "evil.log") {
			t.Fatalf("start with a symlinked log path: %s", stderr)
		}
		if _, err := os.Lstat(outside); err == nil {
			t.Fatalf("the log went through the symbolic link to %s", outside)
		}
		h.crictl(true, "rm", evilID)
	}

	h.removeContainers(ctrID)
	h.removePod(podID)
}

// crictlOnTerminal runs crictl on a new pseudo-terminal of 31 by 97
// (startOnTerminal) and returns what it wrote there.
func crictlOnTerminal(t *testing.T, socket string, args ...string) string {
	t.Helper()
	term := startOnTerminal(t, 31, 97, append([]string{crictlBin(t), "--runtime-endpoint", "unix://" + socket}, args...)...)
	if err := term.wait(t); err != nil {
		t.Fatalf("crictl %v: %v\n%s", args, err, term.output())
	}
	return term.output()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
