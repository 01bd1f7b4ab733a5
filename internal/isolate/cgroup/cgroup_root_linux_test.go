package cgroup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// roleEnv selects the child mode of the test binary: wait for one byte on
// stdin (the test moves the child into the cgroup meanwhile), then print
// Current() and the child's /proc/self/cgroup as JSON.
const roleEnv = "NSCN_CGROUP_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "current" {
		os.Exit(currentMain()) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

type currentResult struct {
	Limits Limits `json:"limits"`
	Self   string `json:"self"`
}

func currentMain() int {
	if _, err := io.ReadFull(os.Stdin, make([]byte, 1)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	l, err := Current()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	self, _ := os.ReadFile("/proc/self/cgroup")
	if err := json.NewEncoder(os.Stdout).Encode(currentResult{Limits: l, Self: string(self)}); err != nil {
		return 3
	}
	return 0
}

// TestHostCgroup creates a real cgroup on this host (v1 or v2, whichever
// Open finds), runs a child in it that reads its limits back, and checks
// that Destroy leaves nothing behind.
func TestHostCgroup(t *testing.T) {
	testutil.RequiresRoot(t)
	mgr, err := Open(Config{})
	if err == nil && mgr.Version() == 2 {
		// The test's own cgroup holds processes; v2 refuses to enable
		// controllers there. The root cgroup is exempt.
		mgr, err = Open(Config{Parent: "/"})
	}
	if errors.Is(err, errdefs.ErrUnavailable) && !testutil.InCI() {
		t.Skipf("no usable cgroup hierarchy: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cgroup v%d", mgr.Version())
	ctx := context.Background()
	top := "nscn-test-" + uuid.NewString()[:8]
	want := Limits{MemoryMax: 48 << 20, CPUQuota: 25000, CPUPeriod: DefaultCPUPeriod, CPUShares: 256}
	g, err := mgr.Create(ctx, top+"/pod/app", want)
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_ = g.Destroy(ctx)
		}
	})

	// The app: a child moved into the group with Add. Then an entered
	// process: a second child moved in with Join(second, first).
	app := startWaiting(t)
	if err := g.Add(app.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	entered := startWaiting(t)
	if err := Join(entered.cmd.Process.Pid, app.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*waitingChild{app, entered} {
		// Seen from the host, the child is in the group.
		procCgroup, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.cmd.Process.Pid), "cgroup"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(procCgroup), "/"+top+"/pod/app\n") {
			t.Errorf("child's /proc/PID/cgroup does not name the group:\n%s", procCgroup)
		}
		res := c.release(t)
		got := res.Limits
		w := want
		if mgr.Version() == 2 {
			got.CPUShares = 0 // converted through cpu.weight; not exact
			w.CPUShares = 0
		}
		if got != w {
			t.Errorf("limits seen by the child = %+v, want %+v\n/proc/self/cgroup:\n%s", got, w, res.Self)
		}
	}

	// The child has exited and been reaped: Destroy removes everything.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.Destroy(dctx); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	for _, d := range g.Dirs() {
		topDir := strings.TrimSuffix(d, "/pod/app")
		if _, err := os.Stat(topDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", topDir, err)
		}
	}
}

// waitingChild is the test binary in role "current", blocked on stdin.
type waitingChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func startWaiting(t *testing.T) *waitingChild {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &waitingChild{cmd: exec.Command(exe)} //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	c.cmd.Env = []string{roleEnv + "=current"}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		}
	})
	return c
}

// release lets the child read its limits, and waits for what it saw.
func (c *waitingChild) release(t *testing.T) currentResult {
	t.Helper()
	if _, err := c.stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, c.stderr.String())
	}
	var res currentResult
	if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil {
		t.Fatalf("child output %q: %v", c.stdout.String(), err)
	}
	return res
}
