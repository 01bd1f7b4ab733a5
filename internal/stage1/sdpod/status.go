package sdpod

import (
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Values of $EXIT_CODE, which systemd sets for ExecStopPost= commands
// (systemd.exec(5), "Environment Variables Set or Propagated by the
// Service Manager").
const (
	ExitCodeExited = "exited"
	ExitCodeKilled = "killed"
	ExitCodeDumped = "dumped"
)

// signalNumbers maps the signal names systemd writes (without "SIG") to
// their numbers on Linux. Real-time signals are "RTMIN+n".
var signalNumbers = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
	"STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
	"URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
	"PWR": 30, "SYS": 31,
}

// glibc's SIGRTMIN and SIGRTMAX, which systemd's names count from.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// SignalNumber parses a signal as systemd names it: "TERM", "SIGTERM",
// "RTMIN+3", or a number.
func SignalNumber(s string) (int, error) {
	name := strings.TrimPrefix(s, "SIG")
	if n, ok := signalNumbers[name]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		off := 0
		if rest != "" {
			o, err := strconv.Atoi(strings.TrimPrefix(rest, "+"))
			if err != nil || !strings.HasPrefix(rest, "+") || o < 0 || o > sigRTMax-sigRTMin {
				return 0, errdefs.InvalidArgument("signal %q is not a signal name", s)
			}
			off = o
		}
		return sigRTMin + off, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n <= sigRTMax && name == strconv.Itoa(n) {
		return n, nil
	}
	return 0, errdefs.InvalidArgument("signal %q is not a signal name", s)
}

// ExitStatus turns the $EXIT_CODE and $EXIT_STATUS systemd gives an
// ExecStopPost= command into the status stage1 records for the app: the
// exit status, or stage1abi.SignalStatusBase plus the signal number. Both
// empty means the main process never ran: that is a stage1 failure
// (stage1abi.ExitRuntime).
func ExitStatus(code, status string) (int, error) {
	switch code {
	case "":
		if status != "" {
			return 0, errdefs.InvalidArgument("EXIT_STATUS=%q without EXIT_CODE", status)
		}
		return stage1abi.ExitRuntime, nil
	case ExitCodeExited:
		n, err := strconv.Atoi(status)
		if err != nil || n < 0 || n > 255 || status != strconv.Itoa(n) {
			return 0, errdefs.InvalidArgument("EXIT_STATUS=%q is not an exit status", status)
		}
		return n, nil
	case ExitCodeKilled, ExitCodeDumped:
		n, err := SignalNumber(status)
		if err != nil {
			return 0, err
		}
		return stage1abi.SignalStatusBase + n, nil
	default:
		return 0, errdefs.InvalidArgument("EXIT_CODE=%q is not one of %s, %s, %s", code, ExitCodeExited, ExitCodeKilled, ExitCodeDumped)
	}
}

// PodStatusInput is what run knows when the pod has ended.
type PodStatusInput struct {
	Apps []string // the pod's apps
	// FirstFailure is the content of FirstFailureFile, "" if absent.
	FirstFailure string
	// Statuses are the recorded app statuses, by app.
	Statuses map[string]int
	// Killed is set when stop --force killed the pod.
	Killed bool
}

// PodStatus is the status run exits with: the first failing app's status,
// 0 when every app exited 0, and SignalStatusBase+SIGKILL for a pod
// stop --force killed. ok is false when the pod ended without any of
// these, a stage1 failure.
func PodStatus(in PodStatusInput) (status int, ok bool) {
	if s := strings.TrimSpace(in.FirstFailure); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 256 {
			return n, true
		}
	}
	if in.Killed {
		return stage1abi.SignalStatusBase + 9, true
	}
	for _, a := range in.Apps {
		st, ok := in.Statuses[a]
		if !ok {
			return 0, false
		}
		if st != 0 {
			return st, true
		}
	}
	return 0, true
}
