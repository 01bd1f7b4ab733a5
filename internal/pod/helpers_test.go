package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/lock"
)

// Environment of TestHelperProcess.
const (
	envHelper = "NSCN_POD_TEST_HELPER" // what to do
	envArg    = "NSCN_POD_TEST_ARG"    // on what
	envOut    = "NSCN_POD_TEST_OUT"    // where to record
)

// mkPod creates a pod directory in the state directory dir directly, as
// another process would have left it, and returns its UUID.
func mkPod(t testing.TB, dataDir, dir string) string {
	t.Helper()
	id := uuid.NewString()
	path := podPath(dataDir, dir, id)
	if err := os.MkdirAll(path, dirMode); err != nil {
		t.Fatal(err)
	}
	if err := writeCreated(path, time.Now()); err != nil {
		t.Fatal(err)
	}
	return id
}

// mkPodAt is mkPod with a chosen UUID.
func mkPodAt(t testing.TB, dataDir, dir, id string) {
	t.Helper()
	if err := os.MkdirAll(podPath(dataDir, dir, id), dirMode); err != nil {
		t.Fatal(err)
	}
}

// holdLock locks path through its own open file description, as another
// process would, until the test ends or the returned File is closed.
func holdLock(t testing.TB, path string) *lock.File {
	t.Helper()
	l, err := lock.TryExclusiveLock(path, lock.Dir)
	if err != nil {
		t.Fatalf("hold lock on %s: %v", path, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// setMtime moves the modification time of path back by age.
func setMtime(t testing.TB, path string, age time.Duration) {
	t.Helper()
	then := time.Now().Add(-age)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// startHelper runs this test binary as TestHelperProcess.
func startHelper(t *testing.T, mode, arg, out string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envArg+"="+arg, envOut+"="+out)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, in, bufio.NewReader(stdout)
}

func waitLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("helper output ended before %q: %v", want, err)
		}
		if strings.HasPrefix(line, "error: ") {
			t.Fatalf("helper: %s", line)
		}
		if line == want+"\n" {
			return
		}
	}
}

// appendLine appends one line to path, atomically with respect to other
// appenders (O_APPEND, one write).
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) //nolint:gosec // G304: a file the test made
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestHelperProcess is not a test: other tests run it in a child process.
//
//	hold: lock the directory $NSCN_POD_TEST_ARG, print "held", wait for
//	      stdin to close.
//	gc:   on stdin's "go" line, GC the data directory $NSCN_POD_TEST_ARG,
//	      recording each Stage1GC call in $NSCN_POD_TEST_OUT; print "done".
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process only")
	}
	arg := os.Getenv(envArg)
	fail := func(err error) {
		fmt.Printf("error: %v\n", err)
		t.Fatal(err)
	}
	switch mode {
	case "hold":
		l, err := lock.TryExclusiveLock(arg, lock.Dir)
		if err != nil {
			fail(err)
		}
		defer func() { _ = l.Close() }()
		fmt.Println("held")
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "gc":
		fmt.Println("ready")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil || line != "go\n" {
			fail(fmt.Errorf("read go line: %q, %w", line, err))
		}
		out := os.Getenv(envOut)
		_, err = GC(context.Background(), arg, GCOptions{
			Stage1GC: func(_ context.Context, p *Pod) error { return appendLine(out, p.UUID) },
		})
		if err != nil {
			fail(err)
		}
		fmt.Println("done")
	default:
		fail(errors.New("unknown helper mode " + mode))
	}
}

// podsIn lists the entries of a state directory.
func podsIn(t *testing.T, dataDir, dir string) []string {
	t.Helper()
	names, err := readNames(filepath.Join(dataDir, PodsDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	return names
}
