package isolate

import (
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
)

func TestStartSafe(t *testing.T) {
	tests := []struct {
		name   string
		policy *Policy
		want   bool
	}{
		{name: "no policy", policy: nil, want: true},
		{name: "no filter", policy: &Policy{}, want: true},
		{name: "the default filter", policy: &Policy{Seccomp: seccomp.Default()}, want: true},
		{name: "a remove-set of other syscalls", policy: &Policy{Seccomp: &seccomp.Filter{Mode: seccomp.Remove, Syscalls: []string{"chmod", "mkdir"}}}, want: true},
		{name: "a remove-set naming the fork", policy: &Policy{Seccomp: &seccomp.Filter{Mode: seccomp.Remove, Errno: "EPERM", Syscalls: []string{"chmod", "clone"}}}, want: false},
		{name: "a remove-set naming a runtime syscall", policy: &Policy{Seccomp: &seccomp.Filter{Mode: seccomp.Remove, Syscalls: []string{"mmap"}}}, want: false},
		{name: "a retain-set", policy: &Policy{Seccomp: &seccomp.Filter{Mode: seccomp.Retain, Syscalls: []string{"execve", "read"}}}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StartSafe(tt.policy); got != tt.want {
				t.Errorf("StartSafe = %v, want %v", got, tt.want)
			}
		})
	}
}

// The filter of every policy of the default blacklist leaves the start
// its syscalls: an app without seccomp isolator takes the fast path.
func TestDefaultBlacklistIsStartSafe(t *testing.T) {
	for _, name := range seccomp.DefaultBlacklist() {
		for _, s := range StartSyscalls() {
			if name == s {
				t.Errorf("the default blacklist blocks %s, which Start needs", name)
			}
		}
	}
}

// Start refuses, before it changes anything, what it cannot apply.
func TestStartRefusesUnsafePolicy(t *testing.T) {
	tests := []struct {
		name string
		p    *Policy
		cfg  ExecConfig
	}{
		{name: "retain-set", p: &Policy{Seccomp: &seccomp.Filter{Mode: seccomp.Retain, Syscalls: []string{"execve"}}}, cfg: ExecConfig{Path: "/bin/true", Args: []string{"true"}}},
		{name: "parent-death signal", p: &Policy{}, cfg: ExecConfig{Path: "/bin/true", Args: []string{"true"}, ParentDeathSignal: 9}},
		{name: "no program", p: &Policy{}, cfg: ExecConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := &Prepared{p: tt.p}
			pid, err := pr.Start(tt.cfg, nil)
			if err == nil {
				t.Fatalf("Start accepted it (pid %d)", pid)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %v, want an invalid argument", err)
			}
		})
	}
}
