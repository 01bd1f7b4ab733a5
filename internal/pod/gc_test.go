package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// hookCounter counts Stage1GC calls per pod.
type hookCounter struct {
	mu    sync.Mutex
	calls map[string]int
	err   error // returned by every call
}

func (h *hookCounter) hook(_ context.Context, p *Pod) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = make(map[string]int)
	}
	h.calls[p.UUID]++
	// The hook runs under the pod's lock, from exited-garbage/.
	if !p.Locked() || p.dir != dirExitedGarbage {
		return fmt.Errorf("hook called on pod %s locked=%v in %s", p.UUID, p.Locked(), p.dir)
	}
	return h.err
}

func (h *hookCounter) count(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

// noUnmount stands in for mountplan.UnmountAll and records its calls.
type unmountRecorder struct {
	mu    sync.Mutex
	paths []string
	err   error
}

func (u *unmountRecorder) unmount(_ context.Context, path string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.paths = append(u.paths, path)
	return u.err
}

func TestGC(t *testing.T) {
	type pod struct {
		dir    string
		locked bool          // by another open file description
		age    time.Duration // of the directory's mtime
	}
	type want struct {
		dir  string // "" when removed
		hook int    // Stage1GC calls
	}
	tests := []struct {
		name  string
		opts  GCOptions
		pods  []pod
		want  []want
		stale bool // plant an abandoned staging directory
	}{
		{
			name: "exited pod is marked and swept without grace",
			pods: []pod{{dir: "run"}},
			want: []want{{dir: "", hook: 1}},
		},
		{
			name: "running pod is left alone",
			pods: []pod{{dir: "run", locked: true}},
			want: []want{{dir: "run"}},
		},
		{
			name: "grace period keeps a freshly marked pod",
			opts: GCOptions{GracePeriod: time.Hour},
			pods: []pod{{dir: "run"}, {dir: "exited-garbage", age: 30 * time.Minute}},
			want: []want{{dir: "exited-garbage"}, {dir: "exited-garbage"}},
		},
		{
			name: "grace period over",
			opts: GCOptions{GracePeriod: time.Hour},
			pods: []pod{{dir: "exited-garbage", age: 2 * time.Hour}},
			want: []want{{dir: "", hook: 1}},
		},
		{
			name: "exited garbage being deleted by another process",
			pods: []pod{{dir: "exited-garbage", locked: true, age: 2 * time.Hour}},
			want: []want{{dir: "exited-garbage"}},
		},
		{
			name: "aborted prepare and embryo are discarded without stage1 gc",
			opts: GCOptions{GracePeriod: time.Hour},
			pods: []pod{{dir: "prepare"}, {dir: "embryo"}},
			want: []want{{dir: ""}, {dir: ""}},
		},
		{
			name: "live prepare and embryo are left alone",
			pods: []pod{{dir: "prepare", locked: true}, {dir: "embryo", locked: true}},
			want: []want{{dir: "prepare"}, {dir: "embryo"}},
		},
		{
			name: "prepared pods expire",
			opts: GCOptions{ExpirePrepared: time.Hour},
			pods: []pod{{dir: "prepared", age: 2 * time.Hour}, {dir: "prepared", age: time.Minute}},
			want: []want{{dir: ""}, {dir: "prepared"}},
		},
		{
			name: "prepared pods are kept without expiry",
			pods: []pod{{dir: "prepared", age: 1000 * time.Hour}},
			want: []want{{dir: "prepared"}},
		},
		{
			name: "garbage is removed without stage1 gc",
			opts: GCOptions{GracePeriod: time.Hour},
			pods: []pod{{dir: "garbage"}},
			want: []want{{dir: ""}},
		},
		{
			name:  "abandoned pod creation is removed",
			stale: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := t.TempDir()
			ids := make([]string, len(tt.pods))
			for i, pd := range tt.pods {
				ids[i] = mkPod(t, dataDir, pd.dir)
				path := podPath(dataDir, pd.dir, ids[i])
				if pd.age > 0 {
					setMtime(t, path, pd.age)
				}
				if pd.locked {
					holdLock(t, path)
				}
			}
			staging := filepath.Join(dataDir, PodsDir, "embryo", stagingPrefix+"x")
			fresh := filepath.Join(dataDir, PodsDir, "embryo", stagingPrefix+"y")
			if tt.stale {
				for _, d := range []string{staging, fresh} {
					if err := os.MkdirAll(d, dirMode); err != nil {
						t.Fatal(err)
					}
				}
				setMtime(t, staging, 2*stagingMaxAge)
			}
			var h hookCounter
			var u unmountRecorder
			opts := tt.opts
			opts.Stage1GC, opts.Unmount = h.hook, u.unmount
			rep, err := GC(ctx, dataDir, opts)
			if err != nil {
				t.Fatalf("GC: %v", err)
			}
			for i, w := range tt.want {
				loc, err := locate(dataDir, ids[i])
				if w.dir == "" {
					if !errors.Is(err, errdefs.ErrNotFound) {
						t.Errorf("pod %d (%s) still in %s, want removed", i, tt.pods[i].dir, loc)
					}
					if !slices.Contains(rep.Removed, ids[i]) {
						t.Errorf("pod %d removed but not reported: %+v", i, rep)
					}
					if !slices.Contains(u.paths, podPath(dataDir, "exited-garbage", ids[i])) &&
						!slices.Contains(u.paths, podPath(dataDir, "garbage", ids[i])) {
						t.Errorf("pod %d removed without unmounting: %v", i, u.paths)
					}
				} else if loc != w.dir {
					t.Errorf("pod %d (%s) in %q (%v), want %s", i, tt.pods[i].dir, loc, err, w.dir)
				}
				if got := h.count(ids[i]); got != w.hook {
					t.Errorf("pod %d: %d stage1 gc calls, want %d", i, got, w.hook)
				}
			}
			if tt.stale {
				if exists(staging) {
					t.Error("abandoned staging directory kept")
				}
				if !exists(fresh) {
					t.Error("fresh staging directory removed")
				}
			}
		})
	}
}

func TestGCReport(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	exited := mkPod(t, dataDir, "run")
	aborted := mkPod(t, dataDir, "prepare")
	rep, err := GC(ctx, dataDir, GCOptions{GracePeriod: time.Hour, Unmount: (&unmountRecorder{}).unmount})
	if err != nil {
		t.Fatal(err)
	}
	want := GCReport{Marked: []string{exited}, Discarded: []string{aborted}, Removed: []string{aborted}, Pending: []string{exited}}
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Errorf("report = %+v, want %+v", rep, want)
	}
}

func TestGCFailures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		hookErr     error
		unmountErr  error
		wantRemoved bool
		wantErr     string
	}{
		{name: "stage1 gc fails: removed anyway", hookErr: errors.New("cni teardown"), wantRemoved: true, wantErr: "cni teardown"},
		{name: "unmount fails: kept for the next gc", unmountErr: errdefs.PermissionDenied("umount"), wantRemoved: false, wantErr: "umount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			id := mkPod(t, dataDir, "run")
			other := mkPod(t, dataDir, "garbage")
			h := hookCounter{err: tt.hookErr}
			u := unmountRecorder{err: tt.unmountErr}
			_, err := GC(ctx, dataDir, GCOptions{Stage1GC: h.hook, Unmount: u.unmount})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("GC error %v, want one mentioning %q", err, tt.wantErr)
			}
			_, lerr := locate(dataDir, id)
			if removed := errors.Is(lerr, errdefs.ErrNotFound); removed != tt.wantRemoved {
				t.Errorf("removed = %v, want %v", removed, tt.wantRemoved)
			}
			if !tt.wantRemoved {
				// Still in exited-garbage, unlocked: the next gc retries.
				p, err := Get(ctx, dataDir, id)
				if err != nil || p.State != ExitedGarbage {
					t.Fatalf("after failed sweep: %v, %v", p, err)
				}
				if _, err := GC(ctx, dataDir, GCOptions{Stage1GC: h.hook, Unmount: (&unmountRecorder{}).unmount}); err != nil {
					t.Fatalf("retrying gc: %v", err)
				}
				if h.count(id) != 2 {
					t.Errorf("stage1 gc called %d times over two gcs, want 2", h.count(id))
				}
			}
			_ = other
		})
	}
}

// TestGCConcurrentGoroutines runs two GCs at once over the same pods:
// neither fails, every pod is removed, and each stage1 gc runs once.
func TestGCConcurrentGoroutines(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	const n = 40
	var ids []string
	for i := range n {
		dir := []string{"run", "exited-garbage", "prepare", "garbage"}[i%4]
		ids = append(ids, mkPod(t, dataDir, dir))
	}
	var h hookCounter
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = GC(ctx, dataDir, GCOptions{Stage1GC: h.hook, Unmount: (&unmountRecorder{}).unmount})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("gc %d: %v", i, err)
		}
	}
	for i, id := range ids {
		want := 0
		if i%4 < 2 {
			want = 1 // ran: run/ or exited-garbage/
		}
		if got := h.count(id); got != want {
			t.Errorf("pod %s: %d stage1 gc calls, want %d", id, got, want)
		}
	}
	pods, err := List(ctx, dataDir)
	if err != nil || len(pods) != 0 {
		t.Errorf("left after concurrent gc: %v, %v", pods, err)
	}
}

// TestGCConcurrentProcesses is the same with GCs in two processes.
func TestGCConcurrentProcesses(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	const n = 40
	var ids []string
	for i := range n {
		dir := []string{"run", "exited-garbage"}[i%2]
		ids = append(ids, mkPod(t, dataDir, dir))
	}
	calls := filepath.Join(t.TempDir(), "calls")
	type helper struct {
		wait func() error
		in   interface{ Write([]byte) (int, error) }
		out  func(string)
	}
	var helpers []helper
	for range 2 {
		cmd, in, out := startHelper(t, "gc", dataDir, calls)
		waitLine(t, out, "ready")
		helpers = append(helpers, helper{wait: cmd.Wait, in: in, out: func(w string) { waitLine(t, out, w) }})
	}
	for _, h := range helpers {
		if _, err := h.in.Write([]byte("go\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range helpers {
		h.out("done")
	}
	b, err := os.ReadFile(calls) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	count := make(map[string]int)
	for _, l := range strings.Fields(string(b)) {
		count[l]++
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("pod %s: %d stage1 gc calls, want 1", id, count[id])
		}
	}
	pods, err := List(ctx, dataDir)
	if err != nil || len(pods) != 0 {
		t.Errorf("left after concurrent gc: %d pods, %v", len(pods), err)
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name     string
		dir      string
		locked   bool // by another open file description
		hold     bool // by the Pod itself
		wantErr  error
		wantHook int
	}{
		{name: "exited", dir: "run", wantHook: 1},
		{name: "exited garbage", dir: "exited-garbage", wantHook: 1},
		{name: "garbage", dir: "garbage"},
		{name: "aborted prepare", dir: "prepare"},
		{name: "aborted embryo", dir: "embryo"},
		{name: "running", dir: "run", locked: true, wantErr: errdefs.ErrFailedPrecondition},
		{name: "preparing", dir: "prepare", locked: true, wantErr: errdefs.ErrFailedPrecondition},
		{name: "prepared", dir: "prepared", wantErr: errdefs.ErrFailedPrecondition},
		{name: "prepared and held", dir: "prepared", hold: true, wantErr: errdefs.ErrFailedPrecondition},
		{name: "being deleted", dir: "garbage", locked: true, wantErr: errdefs.ErrFailedPrecondition},
		{name: "own preparing pod", dir: "prepare", hold: true},
		{name: "own run pod whose stage1 never started", dir: "run", hold: true, wantHook: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := t.TempDir()
			id := mkPod(t, dataDir, tt.dir)
			if tt.locked {
				holdLock(t, podPath(dataDir, tt.dir, id))
			}
			p, err := Get(ctx, dataDir, id)
			if err != nil {
				t.Fatal(err)
			}
			if tt.hold {
				if err := p.TryLock(ctx); err != nil {
					t.Fatal(err)
				}
			}
			var h hookCounter
			u := unmountRecorder{}
			err = Remove(ctx, p, WithStage1GC(h.hook), WithUnmount(u.unmount))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Remove = %v, want %v", err, tt.wantErr)
			}
			_, lerr := locate(dataDir, id)
			if removed := errors.Is(lerr, errdefs.ErrNotFound); removed != (tt.wantErr == nil) {
				t.Errorf("removed = %v", removed)
			}
			if tt.wantErr != nil && p.Locked() != tt.hold {
				t.Errorf("Locked = %v after a refused Remove, want %v", p.Locked(), tt.hold)
			}
			if got := h.count(id); got != tt.wantHook {
				t.Errorf("stage1 gc calls = %d, want %d", got, tt.wantHook)
			}
			if tt.wantErr == nil && len(u.paths) != 1 {
				t.Errorf("unmount calls = %v, want one", u.paths)
			}
			_ = p.Unlock()
		})
	}
}

func TestRemoveStage1GCFails(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "run")
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	h := hookCounter{err: errors.New("no network plugin")}
	err = Remove(ctx, p, WithStage1GC(h.hook), WithUnmount((&unmountRecorder{}).unmount))
	if err == nil || !strings.Contains(err.Error(), "removed, but its stage1 gc failed: no network plugin") {
		t.Fatalf("Remove = %v", err)
	}
	if _, err := locate(dataDir, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pod not removed: %v", err)
	}
}

// TestStage1UnavailableKeepsThePod: a pod whose stage1 gc cannot run at
// all stays, marked and unlocked, for a later attempt, which removes it.
func TestStage1UnavailableKeepsThePod(t *testing.T) {
	unavailable := errdefs.With(ErrStage1Unavailable, errors.New("stage1 tree gone"))
	tests := []struct {
		name   string
		remove func(ctx context.Context, dataDir string, p *Pod, hook func(context.Context, *Pod) error) (removed bool, err error)
	}{
		{name: "Remove", remove: func(ctx context.Context, _ string, p *Pod, hook func(context.Context, *Pod) error) (bool, error) {
			err := Remove(ctx, p, WithStage1GC(hook), WithUnmount((&unmountRecorder{}).unmount))
			return err == nil, err
		}},
		{name: "GC", remove: func(ctx context.Context, dataDir string, p *Pod, hook func(context.Context, *Pod) error) (bool, error) {
			rep, err := GC(ctx, dataDir, GCOptions{Stage1GC: hook, Unmount: (&unmountRecorder{}).unmount})
			return slices.Contains(rep.Removed, p.UUID), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dataDir := t.TempDir()
			id := mkPod(t, dataDir, "run")
			p, err := Get(ctx, dataDir, id)
			if err != nil {
				t.Fatal(err)
			}
			h := hookCounter{err: unavailable}
			removed, err := tt.remove(ctx, dataDir, p, h.hook)
			if removed || !errors.Is(err, ErrStage1Unavailable) || !strings.Contains(err.Error(), "kept the pod for a later gc: stage1 tree gone") {
				t.Fatalf("removed = %v, err = %v; want the pod kept, and saying so", removed, err)
			}
			if got, err := Get(ctx, dataDir, id); err != nil || got.State != ExitedGarbage {
				t.Fatalf("pod after the attempt: %+v, %v; want it unlocked in exited-garbage", got, err)
			}
			// Once the stage1 is back, the pod goes.
			h.err = nil
			if p, err = Get(ctx, dataDir, id); err != nil {
				t.Fatal(err)
			}
			if removed, err := tt.remove(ctx, dataDir, p, h.hook); !removed || err != nil {
				t.Fatalf("second attempt: removed = %v, err = %v", removed, err)
			}
			if h.count(id) != 2 {
				t.Fatalf("stage1 gc calls = %d, want 2", h.count(id))
			}
		})
	}
}

// TestRemoveDefaultUnmount uses mountplan.UnmountAll, which finds nothing
// mounted and needs no privileges then.
func TestRemoveDefaultUnmount(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "garbage")
	if err := os.MkdirAll(filepath.Join(podPath(dataDir, "garbage", id), "stage1", "rootfs", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := locate(dataDir, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pod not removed: %v", err)
	}
}

// TestGCAfterPowerLoss: the moves into prepare/ and, for nscn run, into
// run/ are not fsynced, nor are the files stage0 writes, so after a power
// loss a pod may sit in any of embryo/, prepare/ or run/ with empty files.
// GC removes every one of them, and List still lists them.
func TestGCAfterPowerLoss(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	var ids []string
	for _, dir := range []string{dirEmbryo, dirPrepare, dirRun} {
		id := mkPod(t, dataDir, dir)
		p := podPath(dataDir, dir, id)
		for _, f := range []string{stage1abi.CreatedFile, stage1abi.PodManifestFile} {
			if err := os.WriteFile(filepath.Join(p, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	pods, err := List(ctx, dataDir)
	if err != nil || len(pods) != len(ids) {
		t.Fatalf("List = %d pods, %v; want %d", len(pods), err, len(ids))
	}
	h := &hookCounter{}
	if _, err := GC(ctx, dataDir, GCOptions{GracePeriod: time.Hour, Stage1GC: h.hook, Unmount: (&unmountRecorder{}).unmount}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	// The exited pod waits out its grace period in exited-garbage/.
	if _, err := GC(ctx, dataDir, GCOptions{Stage1GC: h.hook, Unmount: (&unmountRecorder{}).unmount}); err != nil {
		t.Fatalf("second GC: %v", err)
	}
	for _, d := range stateDirs {
		if left := podsIn(t, dataDir, d); len(left) != 0 {
			t.Errorf("%s/ still holds %v", d, left)
		}
	}
}

// TestRemoveFindsUnknownMounts: the default unmount only knows the rootfs
// mounts; a host directory bind-mounted elsewhere in the pod stops the
// deletion, is found in the mount table, unmounted, and keeps its files.
func TestRemoveFindsUnknownMounts(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "run")
	path := podPath(dataDir, "run", id)
	t.Cleanup(func() { _ = mountplan.UnmountAll(context.Background(), dataDir) })
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "precious"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(path, "stage1", "rootfs", "opt", "stage2", "app", "rootfs", "data")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := (mountplan.Kernel{}).Mount(ctx, mountplan.Mount{Source: host, Target: vol, FSType: "none", Flags: unix.MS_BIND}); err != nil {
		t.Fatal(err)
	}
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, p); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := locate(dataDir, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pod not removed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(host, "precious")); err != nil || string(b) != "keep" { //nolint:gosec // G304: a file the test made
		t.Errorf("host file after Remove: %q, %v", b, err)
	}
	if mps, err := mountplan.MountPointsUnder(ctx, dataDir); err != nil || len(mps) != 0 {
		t.Errorf("mounts left: %v, %v", mps, err)
	}
}
