package kvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// devKVM is the KVM device.
	devKVM = "/dev/kvm"
	// childArg is the probe child's argv[1], which ProbeChild looks for.
	childArg = "__nscn-kvm-probe-child"
	// reapTimeout bounds the wait for a killed child: one stuck in the
	// kernel (uninterruptible) does not die on SIGKILL until its syscall
	// returns, and Probe does not wait for that.
	reapTimeout = time.Second
)

// dispatching records that this binary calls ProbeChild, so that a
// re-exec of it as the probe's child reaches the guest and not whatever
// its main does with unknown arguments.
var dispatching atomic.Bool

// ProbeChild must be called first in the main (or TestMain) of every
// binary that calls Probe: Probe re-executes the binary as its child, and
// ProbeChild is where that child runs the guest. In the probe's child
// (argv[1] is the probe's marker) it runs the guest, writes the Verdict to
// stdout as one JSON object and returns true: main then exits with status
// 0 and does nothing else. In any other process it returns false at once.
func ProbeChild() bool {
	dispatching.Store(true)
	if len(os.Args) != 2 || os.Args[1] != childArg {
		return false
	}
	// Nothing to do about a stdout that cannot be written: Probe reads
	// no verdict, and says so.
	_ = json.NewEncoder(os.Stdout).Encode(runGuest(devKVM))
	return true
}

// Probe runs a test guest under KVM and returns AccelKVM if it ran, or
// AccelTCG and why not. Every failure (no /dev/kvm, no permission, a
// guest that faults, a guest that never runs) is a reason to use TCG, so
// there is no error. Probe returns within Timeout, or when ctx ends, plus
// at most a second to reap a killed child.
//
// The guest runs in a child process, a re-exec of this binary that
// ProbeChild dispatches, and not on a thread of the caller. A thread
// stuck in a KVM_RUN that never returns could only be abandoned, keeping
// its VM, its memory and an OS thread for the caller's whole life; and a
// signal interrupts KVM_RUN only when the vCPU comes back to the kernel's
// signal check, which is what a broken nested KVM does not do. A child is
// killed with SIGKILL, the kernel frees its VM as it dies, and Pdeathsig
// kills it too if the caller dies first. The exchange:
//
//	parent (Probe)                        child (ProbeChild, same binary)
//	open /dev/kvm: if that fails, tcg
//	start /proc/self/exe childArg ──────▶ open /dev/kvm, create the VM,
//	                                      its memory and vCPU, KVM_RUN
//	                                      until the out, then until hlt
//	read the verdict ◀─────────────────── stdout: one JSON Verdict, exit 0
//	no verdict within Timeout: SIGKILL the child, reap it (≤ 1 s), tcg
func Probe(ctx context.Context) Verdict {
	return prober{
		dev:        devKVM,
		argv:       []string{"/proc/self/exe", childArg},
		timeout:    Timeout,
		reap:       reapTimeout,
		dispatched: dispatching.Load(),
	}.probe(ctx)
}

// prober is Probe with its seams: tests run another child, one that
// hangs or crashes, with shorter timeouts.
type prober struct {
	dev        string   // the KVM device, opened in the caller first
	argv       []string // the child's command
	env        []string // the child's environment (nil: the caller's)
	timeout    time.Duration
	reap       time.Duration
	dispatched bool // the binary calls ProbeChild
}

func (p prober) probe(ctx context.Context) Verdict {
	// Only worth a child if the device opens.
	f, err := os.OpenFile(p.dev, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return tcg("%s does not exist: no KVM module loaded, or no hardware virtualization (vmx or svm) on this machine", p.dev)
		}
		return tcg("%v", err)
	}
	_ = f.Close()
	if !p.dispatched {
		return tcg("%s opens, but this binary does not call kvm.ProbeChild, so no test guest can run in a child of it", p.dev)
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// Not exec.CommandContext: its Wait would wait for a child that
	// SIGKILL cannot end (stuck in the kernel), and Probe must not.
	cmd := exec.Command(p.argv[0], p.argv[1:]...) //nolint:gosec // G204: this binary (or a test's), argv fixed above
	cmd.Env = p.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return tcg("start the probe's child: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return childVerdict(err, stdout.Bytes(), stderr.String(), time.Since(start))
	case <-ctx.Done():
	}

	var why string
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = fmt.Sprintf("the test guest did not finish within %s: KVM_RUN never returned, as where nested KVM is broken", p.timeout)
	} else {
		why = fmt.Sprintf("the probe was stopped after %s: %v", time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	_ = cmd.Process.Kill()
	timer := time.NewTimer(p.reap)
	defer timer.Stop()
	select {
	case err := <-done:
		return tcg("%s; the probe's child was killed (%v)", why, err)
	case <-timer.C:
		return tcg("%s; the probe's child (pid %d) did not die within %s of SIGKILL", why, cmd.Process.Pid, p.reap)
	}
}

// childVerdict reads the verdict a child that exited wrote. A child that
// wrote none, or exited with a failure, is itself the reason for TCG.
func childVerdict(waitErr error, stdout []byte, stderr string, took time.Duration) Verdict {
	var v Verdict
	if err := json.Unmarshal(stdout, &v); err != nil || (v.Accel != AccelKVM && v.Accel != AccelTCG) || v.Reason == "" {
		status := "exit status 0"
		if waitErr != nil {
			status = waitErr.Error()
		}
		return tcg("the probe's child wrote no verdict (%s): %s", status, lastLines(stderr, 3))
	}
	if waitErr != nil {
		return tcg("the probe's child failed (%v) after its verdict %q", waitErr, v.String())
	}
	v.Reason = oneLine(v.Reason)
	if v.Accel == AccelKVM {
		v.Reason += fmt.Sprintf(" (probe %s)", took.Round(time.Millisecond))
	}
	return v
}

// lastLines returns the last n lines of s, for a reason.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if out := oneLine(strings.Join(lines, " ")); out != "" {
		return out
	}
	return "nothing on stderr"
}
