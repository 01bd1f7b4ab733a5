package proctree

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// startShell starts sh with script and kills it at the test's end.
func startShell(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	c := exec.Command("sh", "-c", script) //nolint:gosec // G204: the test's own scripts
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
	})
	return c
}

// waitChildren polls Children until it lists n pids.
func waitChildren(t *testing.T, pid, n int) []int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		kids, err := Children(pid)
		if err != nil {
			t.Fatalf("Children(%d): %v", pid, err)
		}
		if len(kids) == n {
			return kids
		}
		if time.Now().After(deadline) {
			t.Fatalf("Children(%d) = %v, want %d pids", pid, kids, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChildren(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"none", "exec sleep 60", 0},
		{"one", "sleep 60 & wait", 1},
		{"two", "sleep 60 & sleep 60 & wait", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := startShell(t, tc.script)
			if tc.want == 0 {
				// exec: sh replaces itself with sleep, which forks nothing.
				time.Sleep(50 * time.Millisecond)
			}
			kids := waitChildren(t, sh.Process.Pid, tc.want)
			if slices.Contains(kids, sh.Process.Pid) {
				t.Fatalf("Children(%d) = %v lists the parent itself", sh.Process.Pid, kids)
			}
		})
	}
}

// A child forked by a thread other than the leader is listed under that
// thread only: this test's own process forks from whichever thread the
// runtime picks, and Children must find the child either way.
func TestChildrenOfOwnProcess(t *testing.T) {
	sh := startShell(t, "sleep 60")
	kids, err := Children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, sh.Process.Pid) {
		t.Fatalf("Children(self) = %v, want it to list %d", kids, sh.Process.Pid)
	}
}

func TestChildrenOfGoneProcess(t *testing.T) {
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	_, err := Children(c.Process.Pid)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Children(reaped %d) = %v, want fs.ErrNotExist", c.Process.Pid, err)
	}
}
