package entrypoint

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/sdmanager"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The pod's systemd, as the app entrypoints speak to it: package
// sdmanager, on its private socket (/run/systemd/private in the pod),
// reached from the host through /proc/PID/root. The socket answers root
// alone; the entrypoints run as root on the host, which is root in the
// pod.

// podSystemd speaks to the pod's systemd from a child of the entrypoint
// born in the pod's PID namespace: the pod's systemd refuses connections
// from a process it cannot see there (its peer's pid, SO_PEERCRED, would
// be 0). The child is the entrypoint's own binary (the store's, as enter
// re-executes its own) in SystemdCallArg mode, in the host's other
// namespaces; it makes one call per start, reads its request on stdin
// and writes its reply on stdout, as JSON.
type podSystemd struct {
	pid int // the pod's pid 1, on the host
}

// SystemdCallArg is argv[1] of the child (PodSystemdCall).
const SystemdCallArg = "--nscn-pod-systemd-call"

// systemdRequest is one call of the child, systemdReply its answer.
type (
	systemdRequest = sdmanager.Request
	systemdReply   = sdmanager.Reply
)

// dialPodSystemd returns the pod's systemd whose pid 1 is pid.
func dialPodSystemd(pid int) *podSystemd { return &podSystemd{pid: pid} }

// loadState loads unit, from its file if the pod's systemd does not know
// it yet, and returns its LoadState ("loaded", "not-found", …). systemd
// loads a new unit file on demand, once its directory changed, so a unit
// written into a running pod needs no daemon-reload; an unreferenced
// unit whose file is gone is dropped once it is stopped and not failed.
func (s *podSystemd) loadState(ctx context.Context, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: sdmanager.OpLoadState, Unit: unit})
	return r.State, err
}

// resetFailed forgets a failed unit's state; errors are of no interest
// (a unit that is not failed, or is gone).
func (s *podSystemd) resetFailed(ctx context.Context, unit string) {
	_, _ = s.call(ctx, systemdRequest{Op: sdmanager.OpResetFailed, Unit: unit})
}

// run calls method ("StartUnit", "StopUnit") for unit in mode "replace",
// waits until the job is done and returns the unit's ActiveState then.
func (s *podSystemd) run(ctx context.Context, method, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: method, Unit: unit})
	return r.State, err
}

// activeState returns a unit's ActiveState.
func (s *podSystemd) activeState(ctx context.Context, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: sdmanager.OpActiveState, Unit: unit})
	return r.State, err
}

// call runs one request in a child born in the pod's PID namespace: the
// thread that forks it joins that namespace for its children
// (setns(CLONE_NEWPID)) and is never returned to the Go scheduler.
func (s *podSystemd) call(ctx context.Context, req systemdRequest) (systemdReply, error) {
	req.Socket = filepath.Join("/proc", strconv.Itoa(s.pid), "root", "run", "systemd", "private")
	data, err := json.Marshal(req)
	if err != nil {
		return systemdReply{}, fmt.Errorf("encode systemd request: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return systemdReply{}, fmt.Errorf("find the entrypoint binary: %w", err)
	}
	ns, err := os.Open(filepath.Join("/proc", strconv.Itoa(s.pid), "ns", "pid"))
	if err != nil {
		return systemdReply{}, fmt.Errorf("open the pod's PID namespace: %w", err)
	}
	defer func() { _ = ns.Close() }()
	ctx, cancel := context.WithTimeout(ctx, sdmanager.Timeout)
	defer cancel()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's children are born in the pod
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID); err != nil {
			done <- &os.SyscallError{Syscall: "setns(pid)", Err: err}
			return
		}
		cmd := exec.CommandContext(ctx, exe, SystemdCallArg)
		cmd.Env = []string{}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), &out, os.Stderr
		// No Pdeathsig: in the pod's PID namespace the child's parent
		// is outside (getppid is 0), which the Go runtime takes for a
		// dead parent.
		done <- cmd.Run()
	}()
	if err := <-done; err != nil {
		return systemdReply{}, fmt.Errorf("%s %s in the pod's systemd: %w", req.Op, req.Unit, err)
	}
	var r systemdReply
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return systemdReply{}, fmt.Errorf("%s %s in the pod's systemd: read the reply: %w", req.Op, req.Unit, err)
	}
	if r.Err != "" {
		return r, errdefs.FailedPrecondition("%s %s in the pod's systemd: %s", req.Op, req.Unit, r.Err)
	}
	return r, nil
}

// PodSystemdCall is the child of podSystemd.call (argv[1] SystemdCallArg):
// it makes the call its stdin asks for on the pod's systemd and writes the
// reply on stdout. It returns the exit status.
func PodSystemdCall(ctx context.Context) int {
	// Processes of the pod see this one: keep them from attaching to
	// it or reading its memory.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	var req systemdRequest
	r := systemdReply{}
	if err := json.NewDecoder(io.LimitReader(os.Stdin, 1<<16)).Decode(&req); err != nil {
		r.Err = "read request: " + err.Error()
	} else {
		r = doSystemdCall(ctx, req)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return stage1abi.ExitRuntime
	}
	return 0
}

func doSystemdCall(ctx context.Context, req systemdRequest) systemdReply {
	return sdmanager.Do(ctx, req)
}
