package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr bool
	}{
		{name: "minutes", in: "10m", want: now.Add(-10 * time.Minute)},
		{name: "compound duration", in: "1h30m", want: now.Add(-90 * time.Minute)},
		{name: "zero", in: "0s", want: now},
		{name: "rfc3339", in: "2026-01-02T15:04:05Z", want: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{name: "rfc3339 nanoseconds and zone", in: "2026-01-02T16:04:05.5+01:00", want: time.Date(2026, 1, 2, 15, 4, 5, 5e8, time.UTC)},
		{name: "negative", in: "-5m", wantErr: true},
		{name: "bare number", in: "10", wantErr: true},
		{name: "date only", in: "2026-01-02", wantErr: true},
		{name: "word", in: "yesterday", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSince(tt.in, now)
			if (err != nil) != tt.wantErr || (err == nil && !got.Equal(tt.want)) {
				t.Fatalf("parseSince(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// writeLog appends lines to an app's log in a pod directory.
func writeLog(t *testing.T, podDir, app string, lines ...string) {
	t.Helper()
	p := filepath.Join(podDir, stage1abi.AppLogFile(app))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, l := range lines {
		if _, err := f.WriteString(l + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogsCommand(t *testing.T) {
	f := newPodFixture(t)
	withLogs := f.mkPod(podSpec{state: pod.Exited, apps: []string{"web", "db"}})
	writeLog(t, withLogs.Path, "web",
		"not a record",
		"2026-11-23T15:00:01Z stdout F web one",
		"2026-11-23T15:00:03Z stderr P web-err ",
		"2026-11-23T15:00:04Z stderr F tail")
	writeLog(t, withLogs.Path, "db", "2026-11-23T15:00:02Z stdout F db two")
	noLogs := f.mkPod(podSpec{state: pod.Exited})
	prepared := f.mkPod(podSpec{state: pod.Prepared})

	tests := []struct {
		name              string
		args              []string
		wantOut, wantErr  string
		wantClass         error
		wantErrorContains string
	}{
		{
			name: "every app merged", args: []string{withLogs.UUID},
			wantOut: "[web] web one\n[db] db two\n", wantErr: "nscn: logs: skip a record: log record \"not a record\": time \"not\" is not RFC 3339\n[web] web-err tail\n",
		},
		{name: "one app", args: []string{"--app=db", withLogs.UUID}, wantOut: "db two\n"},
		{name: "timestamps", args: []string{"--app=db", "--timestamps", withLogs.UUID}, wantOut: "2026-11-23T15:00:02Z db two\n"},
		{
			name: "since", args: []string{"--since=2026-11-23T15:00:02Z", withLogs.UUID}, wantOut: "[db] db two\n",
			wantErr: "nscn: logs: skip a record: log record \"not a record\": time \"not\" is not RFC 3339\n[web] web-err tail\n",
		},
		{
			name: "stage1 without logs", args: []string{noLogs.UUID}, wantClass: errdefs.ErrFailedPrecondition,
			wantErrorContains: "its stage1 (example.com/stage1-fake) records no app logs",
		},
		{name: "not started", args: []string{prepared.UUID}, wantClass: errdefs.ErrFailedPrecondition, wantErrorContains: "has not started"},
		{name: "unknown app", args: []string{"--app=nope", withLogs.UUID}, wantErrorContains: `no app "nope"`},
		{name: "no uuid", wantErrorContains: "exactly one pod UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := f.run(append([]string{"logs"}, tt.args...)...)
			if tt.wantErrorContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrorContains) || (tt.wantClass != nil && !errors.Is(err, tt.wantClass)) {
					t.Fatalf("logs %v = %v, want an error with %q (class %v)", tt.args, err, tt.wantErrorContains, tt.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("logs %v: %v (%s)", tt.args, err, errOut)
			}
			if out != tt.wantOut || errOut != tt.wantErr {
				t.Fatalf("logs %v printed stdout %q stderr %q, want %q %q", tt.args, out, errOut, tt.wantOut, tt.wantErr)
			}
		})
	}
}

func TestLogsFollowEndsWithThePod(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Running})
	writeLog(t, p.Path, "web", "2026-11-23T15:00:01Z stdout P one")
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := f.run("logs", "--follow", p.UUID)
		done <- result{out, err}
	}()
	time.Sleep(300 * time.Millisecond) // three polls of applog
	select {
	case r := <-done:
		t.Fatalf("logs --follow returned while the pod runs: %q, %v", r.out, r.err)
	default:
	}
	writeLog(t, p.Path, "web", "2026-11-23T15:00:02Z stdout F  two")
	if err := p.Unlock(); err != nil { // the pod exits
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.out != "one two\n" {
			t.Fatalf("logs --follow = %q, %v; want \"one two\\n\"", r.out, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs --follow did not return after the pod exited")
	}
}

// TestLogsJournalNeedsJournalctl: a pod with a journal and no journalctl
// on the host fails and says where the journal is.
func TestLogsJournalNeedsJournalctl(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited})
	dir := filepath.Join(p.Path, stage1abi.JournalDir, stage1abi.MachineID(p.UUID))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	_, _, err := f.run("logs", p.UUID)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "needs journalctl") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("logs = %v, want a failed precondition naming journalctl and %s", err, dir)
	}
}
