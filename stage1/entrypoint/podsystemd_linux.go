package entrypoint

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
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/godbus/dbus/v5"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The pod's systemd, as the app entrypoints speak to it: on its private
// socket (/run/systemd/private in the pod, reached from the host through
// /proc/PID/root), peer to peer, without a bus daemon, with the
// org.freedesktop.systemd1 Manager interface (org.freedesktop.systemd1(5)).
// The socket answers root alone; the entrypoints run as root on the host,
// which is root in the pod.
const (
	systemdName    = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdManager = systemdName + ".Manager"
	// systemdTimeout bounds a unit's start or stop: a stop takes at most
	// the unit's TimeoutStopSec (10 s) and the post-stop steps.
	systemdTimeout = 60 * time.Second
)

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

// systemdRequest is one call of the child.
type systemdRequest struct {
	Socket string `json:"socket"`
	Op     string `json:"op"` // load-state, active-state, reset-failed, StartUnit, StopUnit
	Unit   string `json:"unit,omitempty"`
}

// systemdReply is the child's answer.
type systemdReply struct {
	State string `json:"state,omitempty"`
	Err   string `json:"err,omitempty"`
}

// dialPodSystemd returns the pod's systemd whose pid 1 is pid.
func dialPodSystemd(pid int) *podSystemd { return &podSystemd{pid: pid} }

// loadState loads unit, from its file if the pod's systemd does not know
// it yet, and returns its LoadState ("loaded", "not-found", …). systemd
// loads a new unit file on demand, once its directory changed, so a unit
// written into a running pod needs no daemon-reload; an unreferenced
// unit whose file is gone is dropped once it is stopped and not failed.
func (s *podSystemd) loadState(ctx context.Context, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: "load-state", Unit: unit})
	return r.State, err
}

// resetFailed forgets a failed unit's state; errors are of no interest
// (a unit that is not failed, or is gone).
func (s *podSystemd) resetFailed(ctx context.Context, unit string) {
	_, _ = s.call(ctx, systemdRequest{Op: "reset-failed", Unit: unit})
}

// run calls method ("StartUnit", "StopUnit") for unit in mode "replace",
// waits until the job is done and returns the unit's ActiveState then.
func (s *podSystemd) run(ctx context.Context, method, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: method, Unit: unit})
	return r.State, err
}

// activeState returns a unit's ActiveState.
func (s *podSystemd) activeState(ctx context.Context, unit string) (string, error) {
	r, err := s.call(ctx, systemdRequest{Op: "active-state", Unit: unit})
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
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
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
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	c := dialSystemd(req.Socket)
	var r systemdReply
	var err error
	switch req.Op {
	case "active-state", "load-state":
		var st unitState
		if st, err = c.state(ctx, req.Unit); err == nil {
			r.State = st.ActiveState
			if req.Op == "load-state" {
				r.State = st.LoadState
			}
		}
	case "reset-failed":
		c.resetFailed(ctx, req.Unit)
	case "StartUnit", "StopUnit":
		r.State, err = c.run(ctx, req.Op, req.Unit)
	default:
		err = fmt.Errorf("unknown systemd call %q", req.Op)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// systemdConn speaks to the pod's systemd on its private socket (in the
// child). Each call has a connection of its own: godbus, on a connection
// without a bus daemon, was seen to miss the reply to a second call on one
// connection while the manager's signals come in.
type systemdConn struct {
	sock string
}

// dialSystemd returns the pod's systemd on the private socket sock.
func dialSystemd(sock string) *systemdConn { return &systemdConn{sock: sock} }

// callAttempt bounds one attempt of a call: the pod's systemd was seen
// to leave a call on a fresh private connection without an answer now
// and then; the calls made here can all be repeated (StartUnit and
// StopUnit in "replace" mode, ResetFailedUnit, ListUnitsByNames).
const callAttempt = time.Second

// callManager calls a method of the pod's systemd manager on a connection
// of its own and stores the reply in out, trying again on a new
// connection when an attempt gets no answer in callAttempt.
func (s *systemdConn) callManager(ctx context.Context, method string, out []any, args ...any) error {
	for {
		actx, cancel := context.WithTimeout(ctx, callAttempt)
		err := s.callOnce(actx, method, out, args...)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
	}
}

func (s *systemdConn) callOnce(ctx context.Context, method string, out []any, args ...any) error {
	conn, err := dbus.Dial("unix:path="+s.sock, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect to the pod's systemd: %w", err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal("0")}); err != nil {
		return fmt.Errorf("authenticate to the pod's systemd: %w", err)
	}
	call := conn.Object(systemdName, systemdPath).CallWithContext(ctx, systemdManager+"."+method, 0, args...)
	if call.Err != nil {
		return fmt.Errorf("%s: %w", method, call.Err)
	}
	if len(out) > 0 {
		if err := call.Store(out...); err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
	}
	return nil
}

// resetFailed forgets a failed unit's state; errors are of no interest
// (a unit that is not failed, or is gone).
func (s *systemdConn) resetFailed(ctx context.Context, unit string) {
	_ = s.callManager(ctx, "ResetFailedUnit", nil, unit)
}

// unitState is a unit's line of ListUnitsByNames (a(ssssssouso)).
type unitState struct {
	Name, Description, LoadState, ActiveState, SubState, Following string
	Path                                                           dbus.ObjectPath
	JobID                                                          uint32
	JobType                                                        string
	JobPath                                                        dbus.ObjectPath
}

// state returns unit's state; ListUnitsByNames loads a unit the manager
// does not know yet from its file.
func (s *systemdConn) state(ctx context.Context, unit string) (unitState, error) {
	var sts []unitState
	if err := s.callManager(ctx, "ListUnitsByNames", []any{&sts}, []string{unit}); err != nil {
		return unitState{}, err
	}
	if len(sts) != 1 {
		return unitState{}, fmt.Errorf("ListUnitsByNames %s: %d units in the reply", unit, len(sts))
	}
	return sts[0], nil
}

// run calls method ("StartUnit", "StopUnit") for unit in mode "replace",
// waits until the unit has no job left and returns its ActiveState then.
func (s *systemdConn) run(ctx context.Context, method, unit string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	var job dbus.ObjectPath
	if err := s.callManager(ctx, method, []any{&job}, unit, "replace"); err != nil {
		return "", fmt.Errorf("%s in the pod's systemd: %w", unit, err)
	}
	for {
		st, err := s.state(ctx, unit)
		if err != nil {
			return "", err
		}
		if st.JobID == 0 {
			return st.ActiveState, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s %s in the pod's systemd: %w", method, unit, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
