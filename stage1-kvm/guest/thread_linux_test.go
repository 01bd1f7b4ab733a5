package guest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pdeathChildEnv makes the test binary the child of
// TestStartOnThreadKeepsTheParentThread: it arms a parent-death signal,
// as isolate.Exec does in the enter helper, says so, and exits when its
// stdin closes.
const pdeathChildEnv = "NSCN_GUEST_TEST_PDEATH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(pdeathChildEnv) == "1" {
		os.Exit(pdeathChild()) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

func pdeathChild() int {
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("armed")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// The enter helper arms a parent-death signal (isolate.Exec), and its
// parent is the thread that forked it, not the agent (prctl(2)): that
// thread must live until the command ends, or its end kills the command
// (app exec's status 137, now and then, on a loaded guest).
func TestStartOnThreadKeepsTheParentThread(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe) //nolint:gosec // G204: the test binary itself
	cmd.Env = append(os.Environ(), pdeathChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tid := make(chan int, 1)
	waited, err := startOnThread(cmd, func() error {
		tid <- unix.Gettid()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := <-tid
	task := filepath.Join("/proc/self/task", strconv.Itoa(n))
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "armed\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	// Give a thread that ended with its goroutine the time to go.
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(task); err != nil {
		t.Errorf("the thread that started the command ended before it: %v", err)
	}
	_ = stdin.Close()
	select {
	case <-waited:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("the command was killed by %v: its parent thread ended", ws.Signal())
		}
		if !cmd.ProcessState.Success() {
			t.Fatalf("the command: %v", cmd.ProcessState)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not end")
	}
	// Its thread goes with it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(task); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the thread that started the command outlived it")
		}
	}
}

func TestStartOnThreadJoinFails(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if _, err := startOnThread(cmd, func() error { return errors.New("no namespace") }); err == nil || err.Error() != "no namespace" {
		t.Fatalf("startOnThread with a failing join: %v", err)
	}
	if cmd.Process != nil {
		t.Fatal("the command started although join failed")
	}
}
