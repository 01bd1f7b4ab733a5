package apphelper

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestWaitStreamRead: the wait ends once the stream's peer has read every
// byte written to it, also when the peer accepts the connection late (a
// journald still starting), and not before; it ends with ctx otherwise.
func TestWaitStreamRead(t *testing.T) {
	tests := []struct {
		name    string
		write   int           // bytes written before the wait
		read    bool          // the peer reads them
		delay   time.Duration // before the peer accepts
		wantErr bool
	}{
		{name: "nothing written", write: 0},
		{name: "read at once", write: 100, read: true},
		{name: "more than a socket buffer", write: 300 << 10, read: true},
		{name: "accepted late", write: 100, read: true, delay: 30 * time.Millisecond},
		{name: "never read", write: 100, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stdout")
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = l.Close() }()
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }()
			written := make(chan error, 1)
			go func() {
				_, err := c.Write(make([]byte, tt.write))
				written <- err
			}()
			read := make(chan int, 1)
			go func() {
				time.Sleep(tt.delay)
				p, err := l.Accept()
				if err != nil {
					read <- -1
					return
				}
				defer func() { _ = p.Close() }()
				n := 0
				if tt.read {
					buf := make([]byte, 4096)
					for n < tt.write {
						m, err := p.Read(buf)
						n += m
						if err != nil {
							break
						}
					}
				}
				read <- n
				time.Sleep(time.Second)
			}()
			// A write larger than the socket's buffer ends only
			// once the peer reads.
			if err := <-written; err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if tt.wantErr {
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
			}
			defer cancel()
			err = waitStreamRead(ctx, c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("waitStreamRead: %v, want error %v", err, tt.wantErr)
			}
			if took := time.Since(start); err == nil && tt.write > 0 && took < tt.delay*3/4 {
				t.Fatalf("the wait ended after %v, before the peer accepted (%v)", took, tt.delay)
			}
			if err == nil && tt.write > 0 {
				// Every byte was read when the wait ended.
				select {
				case n := <-read:
					if n != tt.write {
						t.Fatalf("the peer read %d of %d bytes", n, tt.write)
					}
				case <-time.After(time.Second):
					t.Fatal("the wait ended before the peer had read")
				}
			}
		})
	}
}

func TestSigBlocked(t *testing.T) {
	tests := []struct {
		name   string
		status string
		sig    unix.Signal
		want   bool
	}{
		{name: "journald's mask", status: "Name:\tsystemd-journal\nSigPnd:\t0000000000000000\nSigBlk:\t0000000400004a02\nSigIgn:\t0000000000001000\n", sig: sigJournalSync, want: true},
		{name: "SIGTERM in journald's mask", status: "SigBlk:\t0000000400004a02\n", sig: unix.SIGTERM, want: true},
		{name: "nothing blocked", status: "SigBlk:\t0000000000000000\n", sig: sigJournalSync},
		{name: "no mask", status: "Name:\tx\n", sig: sigJournalSync},
		{name: "bad mask", status: "SigBlk:\tzz\n", sig: sigJournalSync},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sigBlocked(tt.status, tt.sig); got != tt.want {
				t.Fatalf("sigBlocked: %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStartJournalSync: the signal goes to the process called
// systemd-journal, and only once it blocks the signal; a process that
// does not would be killed by it. The proc directory is made up; its
// journald is a sleep, which the signal ends.
func TestStartJournalSync(t *testing.T) {
	tests := []struct {
		name    string
		comm    string
		sigBlk  string
		want    bool
		wantSig bool
	}{
		{name: "journald ready", comm: "systemd-journal", sigBlk: "0000000400004a02", want: true, wantSig: true},
		{name: "journald starting", comm: "systemd-journal", sigBlk: "0000000000000000"},
		{name: "no journald", comm: "app", sigBlk: "0000000400004a02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "30")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			proc := t.TempDir()
			dir := filepath.Join(proc, strconv.Itoa(cmd.Process.Pid))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(proc, "self"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string]string{"comm": tt.comm + "\n", "status": "Name:\t" + tt.comm + "\nSigBlk:\t" + tt.sigBlk + "\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := startJournalSync(proc)
			if err != nil || got != tt.want {
				t.Fatalf("startJournalSync: %v, %v, want %v", got, err, tt.want)
			}
			if !tt.wantSig {
				return
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("the sleep ended with %v", err)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sigJournalSync {
				t.Fatalf("the sleep ended with %v, want signal %d", err, sigJournalSync)
			}
		})
	}
}
