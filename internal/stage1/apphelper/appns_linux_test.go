package apphelper

import (
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/isolate"
)

func TestProcPaths(t *testing.T) {
	tests := []struct {
		name       string
		in         isolate.Paths
		proc, rest isolate.Paths
	}{
		{name: "none", in: isolate.Paths{}},
		{
			name: "defaults keep their /proc part",
			in:   isolate.DefaultPaths(),
			proc: isolate.Paths{ReadOnly: onlyProc(isolate.DefaultPaths().ReadOnly, true), Masked: onlyProc(isolate.DefaultPaths().Masked, true)},
			rest: isolate.Paths{ReadOnly: onlyProc(isolate.DefaultPaths().ReadOnly, false), Masked: onlyProc(isolate.DefaultPaths().Masked, false)},
		},
		{
			name: "a prefix is not a parent",
			in:   isolate.Paths{ReadOnly: []string{"/proc", "/proc/sys", "/procx", "/sys/proc"}, Masked: []string{"/proc/kcore", "/sys/firmware"}},
			proc: isolate.Paths{ReadOnly: []string{"/proc", "/proc/sys"}, Masked: []string{"/proc/kcore"}},
			rest: isolate.Paths{ReadOnly: []string{"/procx", "/sys/proc"}, Masked: []string{"/sys/firmware"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc, rest := procPaths(tt.in)
			if !slices.Equal(proc.ReadOnly, tt.proc.ReadOnly) || !slices.Equal(proc.Masked, tt.proc.Masked) {
				t.Errorf("procPaths(%v) proc = %v, want %v", tt.in, proc, tt.proc)
			}
			if !slices.Equal(rest.ReadOnly, tt.rest.ReadOnly) || !slices.Equal(rest.Masked, tt.rest.Masked) {
				t.Errorf("procPaths(%v) rest = %v, want %v", tt.in, rest, tt.rest)
			}
		})
	}
}

// onlyProc is the independent statement of procPaths' rule for the
// defaults: the paths that are /proc or below it (in), or the others.
func onlyProc(paths []string, in bool) []string {
	var out []string
	for _, p := range paths {
		if (p == "/proc" || len(p) > len("/proc/") && p[:len("/proc/")] == "/proc/") == in {
			out = append(out, p)
		}
	}
	return out
}

func TestWaitExit(t *testing.T) {
	tests := []struct {
		name string
		ws   syscall.WaitStatus // as wait4(2) encodes it
		want exitInfo
	}{
		{name: "exit 0", ws: 0, want: exitInfo{Code: 0}},
		{name: "exit 7", ws: 7 << 8, want: exitInfo{Code: 7}},
		{name: "exit 255", ws: 255 << 8, want: exitInfo{Code: 255}},
		{name: "SIGTERM", ws: syscall.WaitStatus(unix.SIGTERM), want: exitInfo{Signal: int(unix.SIGTERM)}},
		{name: "SIGKILL", ws: syscall.WaitStatus(unix.SIGKILL), want: exitInfo{Signal: int(unix.SIGKILL)}},
		{name: "SIGSEGV with a core", ws: syscall.WaitStatus(unix.SIGSEGV) | 0x80, want: exitInfo{Signal: int(unix.SIGSEGV)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := waitExit(tt.ws); got != tt.want {
				t.Errorf("waitExit(%#x) = %+v, want %+v", uint32(tt.ws), got, tt.want)
			}
		})
	}
}

// TestMirrorStatus covers what the helper does without dying: exit codes
// pass through, a signal it cannot raise becomes 128+N (the raisable
// ones end the process, which the end-to-end tests check).
func TestMirrorStatus(t *testing.T) {
	tests := []struct {
		name string
		in   exitInfo
		want int
	}{
		{name: "success", in: exitInfo{Code: 0}, want: 0},
		{name: "failure", in: exitInfo{Code: 7}, want: 7},
		{name: "runtime failure", in: exitInfo{Code: 254}, want: 254},
		{name: "SIGSEGV", in: exitInfo{Signal: int(unix.SIGSEGV)}, want: 128 + 11},
		{name: "SIGQUIT", in: exitInfo{Signal: int(unix.SIGQUIT)}, want: 128 + 3},
		{name: "SIGABRT", in: exitInfo{Signal: int(unix.SIGABRT)}, want: 128 + 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mirrorStatus(tt.in); got != tt.want {
				t.Errorf("mirrorStatus(%+v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestRaisable(t *testing.T) {
	tests := []struct {
		name string
		sig  unix.Signal
		want bool
	}{
		{name: "SIGKILL", sig: unix.SIGKILL, want: true},
		{name: "SIGTERM", sig: unix.SIGTERM, want: true},
		{name: "SIGINT", sig: unix.SIGINT, want: true},
		{name: "SIGHUP", sig: unix.SIGHUP, want: true},
		{name: "SIGUSR1", sig: unix.SIGUSR1, want: true},
		{name: "SIGQUIT: the runtime dumps goroutines", sig: unix.SIGQUIT, want: false},
		{name: "SIGABRT: the runtime dumps goroutines", sig: unix.SIGABRT, want: false},
		{name: "SIGSEGV: a fault for the runtime", sig: unix.SIGSEGV, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := raisable(tt.sig); got != tt.want {
				t.Errorf("raisable(%v) = %v, want %v", tt.sig, got, tt.want)
			}
		})
	}
}
