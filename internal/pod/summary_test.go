package pod

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestSummary checks that Summary agrees with the methods it stands in
// for.
func TestSummary(t *testing.T) {
	tests := []struct {
		name     string
		apps     []string // nil: no manifest
		files    map[string]string
		running  bool
		full     bool
		wantErr  error // joined with a filled Summary
		wantApps int
	}{
		{name: "no manifest yet", full: true},
		{name: "started, not full", apps: []string{"web"}, files: map[string]string{stage1abi.PIDFile: "42\n"}, wantApps: 1},
		{
			name: "exited", apps: []string{"web", "db"}, full: true, wantApps: 2,
			files: map[string]string{stage1abi.PIDFile: "42\n", stage1abi.AppStatusFile("web"): "0\n", stage1abi.AppStatusFile("db"): "3\n"},
		},
		{
			name: "exited marker", apps: []string{"web"}, full: true, wantApps: 1,
			files: map[string]string{stage1abi.PPIDFile: "42\n", stage1abi.ExitedMarker: ""},
		},
		{name: "running", apps: []string{"web"}, running: true, full: true, wantApps: 1, files: map[string]string{stage1abi.PIDFile: "42\n"}},
		{name: "running and ready", apps: []string{"web"}, running: true, full: true, wantApps: 1, files: map[string]string{stage1abi.PIDFile: "42\n", stage1abi.ReadyFile: "2026-01-02T03:04:05Z\n"}},
		{
			name: "bad status", apps: []string{"web"}, full: true, wantApps: 1, wantErr: errdefs.ErrInvalidArgument,
			files: map[string]string{stage1abi.PIDFile: "42\n", stage1abi.AppStatusFile("web"): "x\n"},
		},
		{name: "bad manifest", files: map[string]string{stage1abi.PodManifestFile: "{"}, full: true, wantErr: errdefs.ErrInvalidArgument},
		{name: "bad manifest, not full", files: map[string]string{stage1abi.PodManifestFile: "{"}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			p, dir := runPod(t)
			if tt.apps != nil {
				writeManifest(t, dir, tt.apps...)
			}
			for rel, content := range tt.files {
				writePodFile(t, dir, rel, content)
			}
			if tt.running {
				holdLock(t, dir)
			}
			if err := p.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			s, err := p.Summary(ctx, tt.full)
			if s == nil {
				t.Fatalf("Summary = nil, %v", err)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Summary error = %v, want %v", err, tt.wantErr)
			}
			if created, _ := p.Created(ctx); !s.Created.Equal(created) || created.IsZero() {
				t.Errorf("Created = %v, want %v", s.Created, created)
			}
			if started, _ := p.Started(ctx); !s.Started.Equal(started) {
				t.Errorf("Started = %v, want %v", s.Started, started)
			}
			if len(s.Apps) != tt.wantApps {
				t.Errorf("apps = %+v, want %d", s.Apps, tt.wantApps)
			}
			// Without full, the apps come from the light decoding: they
			// are what the validated manifest says.
			if m, err := p.Manifest(ctx); err == nil {
				if want := appSummaries(m); !slices.Equal(s.Apps, want) {
					t.Errorf("apps = %+v, want %+v", s.Apps, want)
				}
			}
			if (s.Manifest != nil) != (tt.full && tt.wantApps > 0) {
				t.Errorf("Manifest = %v with full %v", s.Manifest, tt.full)
			}
			if !tt.full {
				if !s.Finished.IsZero() || s.ExitStatuses != nil {
					t.Errorf("not full, but Finished = %v, ExitStatuses = %v", s.Finished, s.ExitStatuses)
				}
				return
			}
			if ready, _ := p.Ready(ctx); !s.Ready.Equal(ready) {
				t.Errorf("Ready = %v, want %v", s.Ready, ready)
			}
			if _, ok := tt.files[stage1abi.ReadyFile]; ok == s.Ready.IsZero() {
				t.Errorf("Ready = %v with ready file %v", s.Ready, ok)
			}
			if finished, _ := p.Finished(ctx); !s.Finished.Equal(finished) {
				t.Errorf("Finished = %v, want %v", s.Finished, finished)
			}
			if want, err := p.AppExitStatuses(ctx); err == nil {
				if len(want) != len(s.ExitStatuses) {
					t.Errorf("ExitStatuses = %v, want %v", s.ExitStatuses, want)
				}
				for k, v := range want {
					if s.ExitStatuses[k] != v {
						t.Errorf("status of %s = %d, want %d", k, s.ExitStatuses[k], v)
					}
				}
			}
		})
	}
}

func TestSummaryOfGCMarkedAndGonePods(t *testing.T) {
	ctx := t.Context()
	p, dir := runPod(t)
	writeManifest(t, dir, "web")
	before := time.Now().Add(-time.Second)
	if err := p.ToExitedGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := p.Summary(ctx, true)
	if err != nil || s.Finished.Before(before) {
		t.Fatalf("Summary of a marked pod = %+v, %v; want Finished at the mark", s, err)
	}
	if err := os.RemoveAll(p.Path); err != nil {
		t.Fatal(err)
	}
	if s, err := p.Summary(ctx, false); s != nil || !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Summary of a removed pod = %+v, %v; want ErrNotFound", s, err)
	}
}
