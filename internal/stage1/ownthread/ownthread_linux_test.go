package ownthread

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		leader     bool
		sameThread bool // fn runs on the thread that made the check
	}{
		{name: "not the leader: fn runs on the locked thread", leader: false, sameThread: true},
		{name: "the leader: fn runs on another thread", leader: true, sameThread: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var checked, ran int
			<-goWith(func() bool { checked = unix.Gettid(); return tt.leader }, func() { ran = unix.Gettid() })
			if checked == 0 || ran == 0 {
				t.Fatalf("check on %d, fn on %d: one did not run", checked, ran)
			}
			if (checked == ran) != tt.sameThread {
				t.Errorf("check on thread %d, fn on %d; want same thread %v", checked, ran, tt.sameThread)
			}
		})
	}
	// The real check: fn never runs on the thread group's leader.
	var tid int
	Run(func() { tid = unix.Gettid() })
	if tid == unix.Getpid() {
		t.Errorf("fn ran on the main thread %d", tid)
	}
}
