package cri

import (
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestListenNotify(t *testing.T) {
	tests := []struct {
		name  string
		msgs  []string
		ready bool
	}{
		{name: "ready alone", msgs: []string{"READY=1"}, ready: true},
		{name: "ready among other lines", msgs: []string{"STATUS=booting\nREADY=1\nMAINPID=7"}, ready: true},
		{name: "status only", msgs: []string{"STATUS=booting", "READY=0"}},
		{name: "not a whole line", msgs: []string{"XREADY=1", "READY=10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := listenNotify(filepath.Join(t.TempDir(), "notify"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.close)
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			for _, m := range tt.msgs {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			wait := 100 * time.Millisecond
			if tt.ready {
				wait = 10 * time.Second
			}
			select {
			case <-n.ready:
				if !tt.ready {
					t.Fatal("READY=1 seen where none was sent")
				}
			case <-time.After(wait):
				if tt.ready {
					t.Fatal("no READY=1 seen")
				}
			}
		})
	}
}

func TestWithoutEnv(t *testing.T) {
	tests := []struct {
		name     string
		env, out []string
	}{
		{name: "none", env: []string{"A=1", "B=2"}, out: []string{"A=1", "B=2"}},
		{name: "one of them", env: []string{"A=1", "NOTIFY_SOCKET=/run/x", "B=2"}, out: []string{"A=1", "B=2"}},
		{name: "twice", env: []string{"NOTIFY_SOCKET=a", "NOTIFY_SOCKET=b"}, out: []string{}},
		{name: "a longer name kept", env: []string{"NOTIFY_SOCKET_X=1"}, out: []string{"NOTIFY_SOCKET_X=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withoutEnv(tt.env, "NOTIFY_SOCKET"); !slices.Equal(got, tt.out) {
				t.Fatalf("got %q, want %q", got, tt.out)
			}
		})
	}
}
