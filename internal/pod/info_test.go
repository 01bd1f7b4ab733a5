package pod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func writePodFile(t testing.TB, podDir, rel, content string) {
	t.Helper()
	p := filepath.Join(podDir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runPod(t *testing.T) (*Pod, string) {
	t.Helper()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "run")
	p, err := Get(context.Background(), dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Path
}

func TestPID(t *testing.T) {
	ctx := context.Background()
	// A parent with exactly one child, for the ppid case.
	parent := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = parent.Process.Kill()
		_ = parent.Wait()
	})
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		if c, err := onlyChild(parent.Process.Pid); err == nil {
			child = c
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if child == 0 {
		t.Fatal("shell did not start its child")
	}
	// A parent with two children: systemd-nspawn for a moment, while its
	// outer child, which cloned the pod's init beside it, has not exited.
	twins := exec.Command("sh", "-c", "sleep 60 & sleep 60 & wait")
	if err := twins.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = twins.Process.Kill()
		_ = twins.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", twins.Process.Pid, twins.Process.Pid))
		if len(strings.Fields(string(b))) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("shell did not start its two children")
		}
	}
	tests := []struct {
		name    string
		files   map[string]string
		want    int
		wantErr error
	}{
		{name: "pid file", files: map[string]string{stage1abi.PIDFile: "1234\n"}, want: 1234},
		{name: "pid file wins over ppid", files: map[string]string{stage1abi.PIDFile: "42", stage1abi.PPIDFile: "1"}, want: 42},
		{name: "ppid file", files: map[string]string{stage1abi.PPIDFile: strconv.Itoa(parent.Process.Pid) + "\n"}, want: child},
		{name: "none yet", wantErr: errdefs.ErrNotFound},
		{name: "garbage", files: map[string]string{stage1abi.PIDFile: "12a\n"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "zero", files: map[string]string{stage1abi.PIDFile: "0\n"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "ppid of a process without children", files: map[string]string{stage1abi.PPIDFile: strconv.Itoa(child)}, wantErr: errdefs.ErrNotFound},
		{name: "ppid of a process with two children, not yet", files: map[string]string{stage1abi.PPIDFile: strconv.Itoa(twins.Process.Pid)}, wantErr: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, dir := runPod(t)
			for name, content := range tt.files {
				writePodFile(t, dir, name, content)
			}
			got, err := p.PID(ctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("PID = %d, %v; want %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("PID = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCgroup(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		content *string
		want    string
		wantErr error
	}{
		{name: "recorded", content: ptr("/nscn/abc\n"), want: "/nscn/abc"},
		{name: "without newline", content: ptr("/machine.slice/x.scope"), want: "/machine.slice/x.scope"},
		{name: "root", content: ptr("/\n"), want: "/"},
		{name: "none", wantErr: errdefs.ErrNotFound},
		{name: "relative", content: ptr("nscn/abc\n"), wantErr: errdefs.ErrInvalidArgument},
		{name: "unclean", content: ptr("/nscn/../etc\n"), wantErr: errdefs.ErrInvalidArgument},
		{name: "two lines", content: ptr("/a\n/b\n"), wantErr: errdefs.ErrInvalidArgument},
		{name: "empty", content: ptr(""), wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, dir := runPod(t)
			if tt.content != nil {
				writePodFile(t, dir, stage1abi.CgroupFile, *tt.content)
			}
			got, err := p.Cgroup(ctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) || got != tt.want {
				t.Fatalf("Cgroup = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestPIDFileIsNotFollowedOut(t *testing.T) {
	ctx := context.Background()
	p, dir := runPod(t)
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("777\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, stage1abi.PIDFile)); err != nil {
		t.Fatal(err)
	}
	if pid, err := p.PID(ctx); err == nil {
		t.Fatalf("PID followed a symlink out of the pod: %d", pid)
	}
	// A FIFO does not block.
	if err := os.Remove(filepath.Join(dir, stage1abi.PIDFile)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, stage1abi.PIDFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PID(ctx); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("PID of a FIFO: %v", err)
	}
}

func TestWaitPID(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		locked  bool          // the pod is running
		writeIn time.Duration // when the pid appears; 0: never
		timeout time.Duration
		want    int
		wantErr error
	}{
		{name: "appears later", locked: true, writeIn: 50 * time.Millisecond, timeout: 10 * time.Second, want: 99},
		{name: "pod exits without a pid", locked: false, timeout: 10 * time.Second, wantErr: errdefs.ErrFailedPrecondition},
		{name: "deadline", locked: true, timeout: 50 * time.Millisecond, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, dir := runPod(t)
			if tt.locked {
				holdLock(t, dir)
			}
			if tt.writeIn > 0 {
				done := make(chan struct{})
				time.AfterFunc(tt.writeIn, func() {
					defer close(done)
					_ = os.WriteFile(filepath.Join(dir, stage1abi.PIDFile), []byte("99\n"), 0o644)
				})
				t.Cleanup(func() { <-done })
			}
			wctx, cancel := context.WithTimeout(ctx, tt.timeout)
			defer cancel()
			got, err := p.WaitPID(wctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WaitPID = %d, %v; want %v", got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("WaitPID = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAppExitStatuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		apps     []string
		statuses map[string]string
		want     map[string]int
		wantErr  error
	}{
		{
			name:     "some exited",
			apps:     []string{"web", "db", "cache"},
			statuses: map[string]string{"web": "0\n", "db": "3\n"},
			want:     map[string]int{"web": 0, "db": 3},
		},
		{name: "none exited", apps: []string{"web"}, want: map[string]int{}},
		{name: "signal status", apps: []string{"web"}, statuses: map[string]string{"web": "143\n"}, want: map[string]int{"web": 143}},
		{name: "bad status", apps: []string{"web"}, statuses: map[string]string{"web": "-1\n"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "no manifest", wantErr: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, dir := runPod(t)
			if tt.apps != nil {
				writeManifest(t, dir, tt.apps...)
			}
			for app, s := range tt.statuses {
				writePodFile(t, dir, stage1abi.AppStatusFile(app), s)
			}
			got, err := p.AppExitStatuses(ctx)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("AppExitStatuses = %v, %v; want %v", got, err, tt.wantErr)
			}
			if tt.wantErr == nil && len(got) != len(tt.want) {
				t.Fatalf("AppExitStatuses = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("status of %s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

func TestManifest(t *testing.T) {
	ctx := context.Background()
	p, dir := runPod(t)
	if _, err := p.Manifest(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Manifest before it is written: %v", err)
	}
	writePodFile(t, dir, stage1abi.PodManifestFile, `{"acKind":"ImageManifest"}`)
	if _, err := p.Manifest(ctx); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Manifest of the wrong kind: %v", err)
	}
	writeManifest(t, dir, "a", "b")
	pm, err := p.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Apps) != 2 || pm.Apps[1].Name.String() != "b" {
		t.Errorf("Manifest apps = %v", pm.Apps)
	}
}

func TestTimes(t *testing.T) {
	ctx := context.Background()
	p, dir := runPod(t)
	writeManifest(t, dir, "a", "b")
	if _, err := p.Started(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Started before the pid: %v", err)
	}
	if _, err := p.Finished(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Finished before anything: %v", err)
	}
	if _, err := p.GCMarked(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("GCMarked of an exited pod: %v", err)
	}
	at := func(rel string, ago time.Duration) time.Time {
		writePodFile(t, dir, rel, "1\n")
		setMtime(t, filepath.Join(dir, rel), ago)
		fi, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	started := at(stage1abi.PPIDFile, 3*time.Hour)
	if got, err := p.Started(ctx); err != nil || !got.Equal(started) {
		t.Errorf("Started = %v, %v; want ppid mtime %v", got, err, started)
	}
	started = at(stage1abi.PIDFile, 2*time.Hour)
	if got, err := p.Started(ctx); err != nil || !got.Equal(started) {
		t.Errorf("Started = %v, %v; want pid mtime %v", got, err, started)
	}
	if _, err := p.Ready(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Ready before the ready file: %v", err)
	}
	ready := at(stage1abi.ReadyFile, 100*time.Minute)
	if got, err := p.Ready(ctx); err != nil || !got.Equal(ready) {
		t.Errorf("Ready = %v, %v; want ready file mtime %v", got, err, ready)
	}
	at(stage1abi.AppStatusFile("a"), 90*time.Minute)
	newest := at(stage1abi.AppStatusFile("b"), time.Hour)
	if got, err := p.Finished(ctx); err != nil || !got.Equal(newest) {
		t.Errorf("Finished = %v, %v; want newest status %v", got, err, newest)
	}
	exited := at(stage1abi.ExitedMarker, 30*time.Minute)
	if got, err := p.Finished(ctx); err != nil || !got.Equal(exited) {
		t.Errorf("Finished = %v, %v; want exited marker %v", got, err, exited)
	}
	// Without any stage1 record, Finished falls back on the gc mark. (The
	// mark is the directory's mtime: remove the records before marking.)
	for _, rel := range []string{stage1abi.ExitedMarker, stage1abi.AppStatusFile("a"), stage1abi.AppStatusFile("b")} {
		if err := os.Remove(filepath.Join(p.Path, rel)); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	if err := p.ToExitedGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	marked, err := p.GCMarked(ctx)
	if err != nil || marked.Before(before.Add(-time.Second)) {
		t.Errorf("GCMarked = %v, %v; want about %v", marked, err, before)
	}
	if got, err := p.Finished(ctx); err != nil || !got.Equal(marked) {
		t.Errorf("Finished = %v, %v; want gc mark %v", got, err, marked)
	}
	running, dir2 := runPod(t)
	holdLock(t, dir2)
	if err := running.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := running.Finished(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Finished of a running pod: %v", err)
	}
}

func TestReadyIsARegularFile(t *testing.T) {
	p, dir := runPod(t)
	if err := os.Mkdir(filepath.Join(dir, stage1abi.ReadyFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ready(t.Context()); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Ready with a directory as the ready file: %v, want invalid argument", err)
	}
}

// readRegular reads whole files in one read when it can, and still reads
// to the limit, and refuses past it, whatever fstat said.
func TestReadRegularSizes(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	tests := []struct {
		name    string
		size    int
		limit   int64
		wantErr bool
	}{
		{name: "empty", size: 0, limit: 16},
		{name: "small", size: 5, limit: 16},
		{name: "at the limit", size: 16, limit: 16},
		{name: "past the limit", size: 17, limit: 16, wantErr: true},
		{name: "large", size: 300 << 10, limit: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := bytes.Repeat([]byte("x"), tt.size)
			if err := os.WriteFile(filepath.Join(dir, "f"), want, 0o600); err != nil {
				t.Fatal(err)
			}
			got, fi, err := readRegular(root, "f", tt.limit)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("readRegular = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || fi.Size() != int64(tt.size) {
				t.Fatalf("readRegular read %d bytes (size %d), want %d", len(got), fi.Size(), tt.size)
			}
		})
	}
}
