package main

import (
	"strings"
	"testing"
	"time"
)

func TestFormatTimeline(t *testing.T) {
	tests := []struct {
		name    string
		stderr  string
		want    []string
		wantErr bool
	}{
		{
			name: "two processes", stderr: "level=DEBUG msg=x\nnscn-timeline: +1.000ms stage0 flags-parsed\nnscn-timeline: +3.500ms stage1-fly start\n",
			want: []string{"      ", "1.000 ms", "+2.500 ms", "stage1-fly", "start"},
		},
		{
			name: "with the harness's end", stderr: "nscn-timeline: +2.000ms stage0 process-started\n" + exitedLine(5250*time.Microsecond),
			want: []string{"5.250 ms", "+3.250 ms", "harness", "exited"},
		},
		{name: "none", stderr: "nscn: failed\n", wantErr: true},
		{name: "malformed", stderr: "nscn-timeline: soon stage0 x\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := formatTimeline(tt.stderr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("formatTimeline error = %v, wantErr %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("formatTimeline = %q, lacks %q", got, w)
				}
			}
		})
	}
}
