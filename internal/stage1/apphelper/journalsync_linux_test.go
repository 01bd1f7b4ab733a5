package apphelper

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeJournal answers one varlink call on path with reply, after delay
// (a journald that starts late binds its socket late), and sends the
// call it read on got.
func fakeJournal(t *testing.T, path string, delay time.Duration, reply string) <-chan string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		time.Sleep(delay)
		l, err := net.Listen("unix", path)
		if err != nil {
			got <- "listen: " + err.Error()
			return
		}
		defer func() { _ = l.Close() }()
		c, err := l.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer func() { _ = c.Close() }()
		call, err := bufio.NewReader(c).ReadString(0)
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- strings.TrimSuffix(call, "\x00")
		_, _ = c.Write([]byte(reply + "\x00"))
	}()
	return got
}

func TestSyncJournal(t *testing.T) {
	const call = `{"method":"io.systemd.Journal.Synchronize","parameters":{}}`
	tests := []struct {
		name    string
		delay   time.Duration
		reply   string
		timeout time.Duration
		wantErr string
	}{
		{name: "synced", reply: `{"parameters":{}}`, timeout: 10 * time.Second},
		{name: "journald starts late", delay: 50 * time.Millisecond, reply: `{"parameters":{}}`, timeout: 10 * time.Second},
		{name: "error reply", reply: `{"error":"io.systemd.Journal.Nope","parameters":{}}`, timeout: 10 * time.Second, wantErr: "did not sync"},
		{name: "no journald", delay: time.Hour, timeout: 30 * time.Millisecond, wantErr: "wait for the pod's journal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "io.systemd.journal")
			got := fakeJournal(t, path, tt.delay, tt.reply)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			err := syncJournal(ctx, path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c := <-got; c != call {
				t.Fatalf("the journal got %q, want %q", c, call)
			}
		})
	}
}
