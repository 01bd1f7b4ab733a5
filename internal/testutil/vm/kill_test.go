package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/kvm"
)

// helperEnv makes the test binary boot the Config in it (JSON) with no
// timeout, as a test binary whose own timeout is about to kill it does.
const helperEnv = "NSCN_VM_TEST_BOOT_CONFIG"

func TestMain(m *testing.M) {
	if kvm.ProbeChild() {
		return
	}
	if cfg := os.Getenv(helperEnv); cfg != "" {
		bootHelper(cfg)
		os.Exit(1) //nolint:forbidigo // TestMain is the test binary's main: the helper's boot never ends well, its qemu waits forever
	}
	m.Run()
}

// bootHelper boots the Config config until its qemu ends, which the
// test's qemu never does.
func bootHelper(config string) {
	var cfg Config
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	m, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	// The cache directory is the test's: the initrd is left in it.
	_, err = m.Boot(context.Background(), cfg.CacheDir, nil, []Script{{Name: "x", Body: "true"}})
	fmt.Fprintln(os.Stderr, err)
}

// fakeQemu writes a stand-in for qemu that records its pid in dir/qemu,
// starts a child that records its own in dir/child (in qemu's process
// group, as a non-interactive shell does not make job groups), and waits
// forever: a guest that never powers off.
func fakeQemu(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "qemu-system-x86_64")
	script := fmt.Sprintf("#!/bin/sh\necho $$ >%[1]s/qemu\nsleep 100000 &\necho $! >%[1]s/child\nwait\n", dir)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil { //nolint:gosec // G306: a stand-in for qemu, executable as the real one is
		t.Fatal(err)
	}
	return p
}

// readPid waits up to five seconds for a pid file.
func readPid(t *testing.T, path string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(path) //nolint:gosec // G304: a file of the test's own directory
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", path, err)
		}
	}
}

// alive reports whether process pid is there and not a zombie (a killed
// orphan stays one until PID 1 reaps it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitDead waits up to three seconds for a process to die.
func waitDead(t *testing.T, what string, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s %d still running", what, pid)
			return
		}
	}
}

// TestBootTimeoutKillsQemu boots a guest that never powers off with a
// short timeout: Boot returns promptly with the timeout, and qemu and
// anything it started are gone (its process group is killed, and qemu is
// reaped).
func TestBootTimeoutKillsQemu(t *testing.T) {
	c := fixture(t)
	dir := t.TempDir()
	c.Qemu, c.Accel = fakeQemu(t, dir), "tcg"
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	run, err := m.Boot(ctx, t.TempDir(), nil, []Script{{Name: "x", Body: "true"}})
	took := time.Since(start)
	var be *BootError
	if !errors.As(err, &be) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Boot: %v, want a BootError for the timeout", err)
	}
	if took > timeout+2*time.Second {
		t.Errorf("Boot returned after %s, want right after the %s timeout", took, timeout)
	}
	if run == nil || run.Accel != "tcg" || !strings.Contains(run.AccelReason, "not probed") {
		t.Errorf("run %+v: want the configured accelerator", run)
	}
	qemu, child := readPid(t, filepath.Join(dir, "qemu")), readPid(t, filepath.Join(dir, "child"))
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", qemu)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("qemu %d not reaped after Boot returned (%v)", qemu, err)
	}
	waitDead(t, "qemu's child", child)
}

// TestQemuDiesWithHarness kills a test binary in the middle of a boot, as
// its -test.timeout does: qemu must die with it instead of running on as
// an orphan.
func TestQemuDiesWithHarness(t *testing.T) {
	c := fixture(t)
	dir := t.TempDir()
	c.Qemu, c.Accel = fakeQemu(t, dir), "tcg"
	cfg, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.CommandContext(t.Context(), self) //nolint:gosec // G204: this test binary
	helper.Env = append(os.Environ(), helperEnv+"="+string(cfg))
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	qemu := readPid(t, filepath.Join(dir, "qemu"))
	// qemu's own child is not covered (Pdeathsig is per process): kill
	// the group as Boot would have.
	t.Cleanup(func() { _ = syscall.Kill(-qemu, syscall.SIGKILL) })
	if !alive(qemu) {
		t.Fatalf("qemu %d is not running", qemu)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitDead(t, "qemu", qemu)
}

func TestAccel(t *testing.T) {
	tests := []struct {
		name   string
		accel  string      // Config.Accel
		probed kvm.Verdict // what the fake probe says
		want   kvm.Accel
		reason string
		probes int
	}{
		{name: "probe finds a running guest", probed: kvm.Verdict{Accel: kvm.AccelKVM, Reason: "a test guest ran"}, want: kvm.AccelKVM, reason: "a test guest ran", probes: 1},
		{name: "probe finds KVM broken", probed: kvm.Verdict{Accel: kvm.AccelTCG, Reason: "KVM_RUN never returned"}, want: kvm.AccelTCG, reason: "KVM_RUN never returned", probes: 1},
		{name: "tcg forced", accel: "tcg", probed: kvm.Verdict{Accel: kvm.AccelKVM, Reason: "x"}, want: kvm.AccelTCG, reason: "not probed"},
		{name: "kvm forced", accel: "kvm", probed: kvm.Verdict{Accel: kvm.AccelTCG, Reason: "x"}, want: kvm.AccelKVM, reason: "not probed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fixture(t)
			c.Accel = tt.accel
			m, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			probes := 0
			m.probe = func(context.Context) kvm.Verdict { probes++; return tt.probed }
			for range 2 {
				if v := m.Accel(t.Context()); v.Accel != tt.want || !strings.Contains(v.Reason, tt.reason) {
					t.Errorf("Accel: %s, want %s with %q", v, tt.want, tt.reason)
				}
			}
			if probes != tt.probes {
				t.Errorf("probed %d times, want %d", probes, tt.probes)
			}
			if got, want := strings.Join(accelArgs(tt.want), " "), "-accel "+string(tt.want)+" -cpu max"; got != want {
				t.Errorf("qemu flags %q, want %q", got, want)
			}
		})
	}
}
