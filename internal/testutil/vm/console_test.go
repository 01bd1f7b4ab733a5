package vm

import (
	"strings"
	"testing"
	"time"
)

func TestParseConsole(t *testing.T) {
	tests := []struct {
		name    string
		serial  string
		want    []Result
		boot    time.Duration
		wantErr string
	}{
		{
			name: "two scripts, kernel noise outside",
			serial: "[    0.1] Linux version 6.1\r\nnscn-vm-init: up after 3.50s, kernel 6.1\r\n" +
				"@@nscn-vm begin 000-a\r\nline 1\r\nline 2\r\n\r\n@@nscn-vm end 000-a status=3\r\n" +
				"nscn-vm-init: kernel log tail after 000-a:\r\n[    4.0] oops\r\n" +
				"@@nscn-vm begin 001-b\r\nno newline\r\n@@nscn-vm end 001-b status=0\r\n" +
				"@@nscn-vm done\r\n[    5.0] reboot: Power down\r\n",
			want: []Result{{Name: "000-a", Output: "line 1\nline 2\n", Status: 3}, {Name: "001-b", Output: "no newline", Status: 0}},
			boot: 3500 * time.Millisecond,
		},
		{
			name:   "empty output",
			serial: "@@nscn-vm begin 000-a\n\n@@nscn-vm end 000-a status=0\n@@nscn-vm done\n",
			want:   []Result{{Name: "000-a", Output: "", Status: 0}},
		},
		{
			name:   "a marker inside the output is output",
			serial: "@@nscn-vm begin 000-a\n@@nscn-vm done\n@@nscn-vm begin x\n\n@@nscn-vm end 000-a status=1\n@@nscn-vm done\n",
			want:   []Result{{Name: "000-a", Output: "@@nscn-vm done\n@@nscn-vm begin x\n", Status: 1}},
		},
		{name: "init failed", serial: "@@nscn-vm failed mount cgroup2\n", wantErr: "init failed: mount cgroup2"},
		{name: "script cut off", serial: "@@nscn-vm begin 000-a\nhalf", wantErr: "script 000-a did not finish"},
		{name: "no done marker", serial: "@@nscn-vm begin 000-a\n\n@@nscn-vm end 000-a status=0\n", wantErr: "did not report the end"},
		{name: "bad status", serial: "@@nscn-vm begin 000-a\n\n@@nscn-vm end 000-a status=x\n@@nscn-vm done\n", wantErr: "malformed end marker"},
		{name: "empty", serial: "", wantErr: "did not report the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := parseConsole(tt.serial)
			if run == nil || strings.Contains(run.Serial, "\r") {
				t.Fatalf("run %+v: want the console without \\r", run)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(run.Results) != len(tt.want) {
				t.Fatalf("results %+v, want %+v", run.Results, tt.want)
			}
			for i := range tt.want {
				if run.Results[i] != tt.want[i] {
					t.Errorf("result %d: %+v, want %+v", i, run.Results[i], tt.want[i])
				}
			}
			if run.Boot != tt.boot {
				t.Errorf("boot %v, want %v", run.Boot, tt.boot)
			}
		})
	}
}

func FuzzParseConsole(f *testing.F) {
	f.Add("@@nscn-vm begin 000-a\nx\n\n@@nscn-vm end 000-a status=3\n@@nscn-vm done\n")
	f.Add("nscn-vm-init: up after 1e400s\n@@nscn-vm failed x\n")
	f.Add("@@nscn-vm begin a\r\n@@nscn-vm end b status=-1\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		run, err := parseConsole(s)
		if run == nil {
			t.Fatal("nil run")
		}
		if err == nil && !strings.Contains(s, markDone) {
			t.Fatalf("no error without the done marker: %q", s)
		}
		for _, r := range run.Results {
			if !strings.Contains(s, markEnd+r.Name+" status=") {
				t.Fatalf("result %+v without its end marker", r)
			}
		}
	})
}

func TestTail(t *testing.T) {
	if got := tail("a\nb\nc\nd\n", 2); got != "c\nd" {
		t.Fatalf("tail: %q", got)
	}
	if got := tail("a", 5); got != "a" {
		t.Fatalf("tail: %q", got)
	}
}
