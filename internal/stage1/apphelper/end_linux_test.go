package apphelper

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// TestExitInfoStatus: the status the helper records for the app is the
// one the reap mode makes from what systemd reports of the helper that
// mirrors the app (sdpod.ExitStatus), so both record the same.
func TestExitInfoStatus(t *testing.T) {
	tests := []struct {
		name               string
		e                  exitInfo
		exitCode, exitStat string // what systemd reports of the mirroring helper
	}{
		{name: "success", e: exitInfo{Code: 0}, exitCode: sdpod.ExitCodeExited, exitStat: "0"},
		{name: "failure", e: exitInfo{Code: 3}, exitCode: sdpod.ExitCodeExited, exitStat: "3"},
		{name: "raisable signal", e: exitInfo{Signal: 15}, exitCode: sdpod.ExitCodeKilled, exitStat: "TERM"},
		{name: "signal the helper cannot raise", e: exitInfo{Signal: 11}, exitCode: sdpod.ExitCodeExited, exitStat: strconv.Itoa(128 + 11)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := sdpod.ExitStatus(tt.exitCode, tt.exitStat)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.e.status(); got != want {
				t.Fatalf("status %d, the reap mode's %d", got, want)
			}
		})
	}
}

// TestEndOfApp: the helper that ran the app records its status itself,
// but not after a post-stop handler, which must run first, nor in a
// mutable pod, whose apps the reap mode alone records.
func TestEndOfApp(t *testing.T) {
	tests := []struct {
		name    string
		mutable bool
		spec    appspec.AppSpec
		records bool
	}{
		{name: "plain app", spec: appspec.AppSpec{Name: "a", Exec: []string{"/bin/true"}}, records: true},
		{name: "pre-start handler", spec: appspec.AppSpec{Name: "a", Exec: []string{"/bin/true"}, PreStart: []string{"/bin/true"}}, records: true},
		{name: "post-stop handler", spec: appspec.AppSpec{Name: "a", Exec: []string{"/bin/true"}, PostStop: []string{"/bin/true"}}},
		{name: "mutable pod", mutable: true, spec: appspec.AppSpec{Name: "a", Exec: []string{"/bin/true"}}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &sdpod.Pod{Mutable: tt.mutable}
			if got := endOfApp(context.Background(), log, pod, &sdpod.App{Spec: tt.spec}) != nil; got != tt.records {
				t.Fatalf("records the status: %v, want %v", got, tt.records)
			}
		})
	}
}
