package sdmanager

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDoFailures: a call that cannot be made is a Reply with Err, at
// once: an unknown operation, a socket nobody serves.
func TestDoFailures(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "private")
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{name: "unknown op", req: Request{Socket: missing, Op: "KillUnit", Unit: "app-a.service"}, want: "unknown systemd call"},
		{name: "no socket", req: Request{Socket: missing, Op: OpStart, Unit: "app-a.service"}, want: "connect to the pod's systemd"},
		{name: "no socket, state", req: Request{Socket: missing, Op: OpLoadState, Unit: "app-a.service"}, want: "connect to the pod's systemd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Do(context.Background(), tt.req)
			if !strings.Contains(r.Err, tt.want) || r.State != "" {
				t.Fatalf("Do = %+v, want an error with %q", r, tt.want)
			}
		})
	}
	// ResetFailed never fails.
	if r := Do(context.Background(), Request{Socket: missing, Op: OpResetFailed, Unit: "app-a.service"}); r.Err != "" {
		t.Fatalf("reset-failed: %+v", r)
	}
}

// TestPollBackoff: the job's end is polled 2, 4, 8, 16 ms apart, then
// every 20 ms, never more often and never less.
func TestPollBackoff(t *testing.T) {
	want := []time.Duration{2, 4, 8, 16, 20, 20, 20}
	wait := firstPoll
	for i, w := range want {
		if wait != w*time.Millisecond {
			t.Fatalf("poll %d: wait %v, want %v", i, wait, w*time.Millisecond)
		}
		wait = nextPoll(wait)
	}
}
