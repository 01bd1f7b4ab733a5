// Package sdmanager speaks to a pod's systemd (its pid 1) on the manager's
// private socket (/run/systemd/private in the pod), peer to peer, without
// a bus daemon, with the org.freedesktop.systemd1 Manager interface
// (org.freedesktop.systemd1(5)): the calls the app entrypoints of a
// mutable pod make to load, start, stop and forget an app's unit.
//
// It runs in stage1, in a process the pod's systemd can see in its PID
// namespace (systemd refuses a peer whose pid, SO_PEERCRED, is 0 there):
// the nspawn flavor's app entrypoints run it in a child born in the pod's
// PID namespace, the kvm flavor's guest agent runs it in the guest. The
// socket answers root alone. It starts no process.
package sdmanager

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	systemdName    = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdManager = systemdName + ".Manager"
	// Timeout bounds a unit's start or stop: a stop takes at most the
	// unit's TimeoutStopSec (10 s) and the post-stop steps.
	Timeout = 60 * time.Second
	// callAttempt bounds one attempt of a call: the pod's systemd was
	// seen to leave a call on a fresh private connection without an
	// answer now and then; the calls made here can all be repeated
	// (StartUnit and StopUnit in "replace" mode, ResetFailedUnit,
	// ListUnitsByNames).
	callAttempt = time.Second
	maxAttempt  = 8 * time.Second
)

// The operations of a Request.
const (
	OpLoadState   = "load-state"   // load the unit if needed; Reply.State is its LoadState
	OpActiveState = "active-state" // Reply.State is the unit's ActiveState
	OpResetFailed = "reset-failed" // forget a failed state; never an error
	OpStart       = "StartUnit"    // start, wait for the job; Reply.State is the ActiveState then
	OpStop        = "StopUnit"     // stop, wait for the job; Reply.State is the ActiveState then
)

// Request is one call: Op on Unit. Socket is the manager's socket where
// the caller needs to say (the nspawn flavor's child reaches the pod's
// through /proc/PID/root); Do takes DefaultSocket when it is empty.
type Request struct {
	Socket string `json:"socket,omitempty"`
	Op     string `json:"op"`
	Unit   string `json:"unit,omitempty"`
}

// Reply is a call's answer: the state it asked for, or why it failed.
type Reply struct {
	State string `json:"state,omitempty"`
	Err   string `json:"err,omitempty"`
}

// DefaultSocket is the manager's private socket in the pod.
const DefaultSocket = "/run/systemd/private"

// Do makes the call req asks for, within Timeout, and returns its reply;
// a failure is in Reply.Err.
func Do(ctx context.Context, req Request) Reply {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	sock := req.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	c := &conn{sock: sock}
	var r Reply
	var err error
	switch req.Op {
	case OpActiveState, OpLoadState:
		var st unitState
		if st, err = c.state(ctx, req.Unit); err == nil {
			r.State = st.ActiveState
			if req.Op == OpLoadState {
				r.State = st.LoadState
			}
		}
	case OpResetFailed:
		_ = c.callManager(ctx, "ResetFailedUnit", nil, req.Unit)
	case OpStart, OpStop:
		r.State, err = c.run(ctx, req.Op, req.Unit)
	default:
		err = fmt.Errorf("unknown systemd call %q", req.Op)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// conn makes calls on the manager's socket. Each call has a connection
// of its own: godbus, on a connection without a bus daemon, was seen to
// miss the reply to a second call on one connection while the manager's
// signals come in.
type conn struct {
	sock string
}

// callManager calls a method of the manager on a connection of its own
// and stores the reply in out, trying again on a new connection when an
// attempt gets no answer in callAttempt.
//
// An attempt that ran out of time fails with the context's error or with
// whatever the connection's close made of the read (godbus closes it when
// the context ends). Each attempt gets twice the time of the last, up to
// maxAttempt: an emulated guest (the kvm flavor under TCG) may need more
// than callAttempt for any answer.
func (s *conn) callManager(ctx context.Context, method string, out []any, args ...any) error {
	for attempt := callAttempt; ; attempt = min(2*attempt, maxAttempt) {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := s.callOnce(actx, method, out, args...)
		timedOut := actx.Err() != nil
		cancel()
		if err == nil || !timedOut || ctx.Err() != nil {
			return err
		}
	}
}

func (s *conn) callOnce(ctx context.Context, method string, out []any, args ...any) error {
	c, err := dbus.Dial("unix:path="+s.sock, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect to the pod's systemd: %w", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal("0")}); err != nil {
		return fmt.Errorf("authenticate to the pod's systemd: %w", err)
	}
	call := c.Object(systemdName, systemdPath).CallWithContext(ctx, systemdManager+"."+method, 0, args...)
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

// unitState is a unit's line of ListUnitsByNames (a(ssssssouso)).
type unitState struct {
	Name, Description, LoadState, ActiveState, SubState, Following string
	Path                                                           dbus.ObjectPath
	JobID                                                          uint32
	JobType                                                        string
	JobPath                                                        dbus.ObjectPath
}

// state returns unit's state; ListUnitsByNames loads a unit the manager
// does not know yet from its file (systemd loads a new unit file on
// demand, once its directory changed: a unit written into a running pod
// needs no daemon-reload).
func (s *conn) state(ctx context.Context, unit string) (unitState, error) {
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
func (s *conn) run(ctx context.Context, method, unit string) (string, error) {
	var job dbus.ObjectPath
	if err := s.callManager(ctx, method, []any{&job}, unit, "replace"); err != nil {
		return "", fmt.Errorf("%s in the pod's systemd: %w", unit, err)
	}
	for wait := firstPoll; ; wait = nextPoll(wait) {
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
		case <-time.After(wait):
		}
	}
}

// The job's end is polled, first often, then every lastPoll. An app's
// start is done 20 to 40 ms after StartUnit (the helper's READY=1), and a
// CRI StartContainer waits for it: a fixed 20 ms poll added 10 ms on
// average to a start of 40 (bench figure 10). The first polls are 2, 4, 8
// and 16 ms apart, then 20 as before, so a long stop (TimeoutStopSec) or
// an emulated kvm guest's start pays four more polls, no more. Each poll
// is a connection and one ListUnitsByNames; systemd answers it between
// its other work.
const (
	firstPoll = 2 * time.Millisecond
	lastPoll  = 20 * time.Millisecond
)

// nextPoll is the wait after one of wait: twice as long, at most lastPoll.
func nextPoll(wait time.Duration) time.Duration { return min(2*wait, lastPoll) }
