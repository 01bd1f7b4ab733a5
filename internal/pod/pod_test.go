package pod

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestNewPod(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	before := time.Now()
	p, err := NewPod(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Unlock() }()
	if !validUUID(p.UUID) {
		t.Errorf("UUID %q is not canonical", p.UUID)
	}
	if want := filepath.Join(dataDir, PodsDir, "embryo", p.UUID); p.Path != want {
		t.Errorf("Path = %q, want %q", p.Path, want)
	}
	if p.State != Embryo || !p.Locked() {
		t.Errorf("State = %v, Locked = %v; want embryo, locked", p.State, p.Locked())
	}
	held, err := lock.HeldExclusively(p.Path, lock.Dir)
	if err != nil || !held {
		t.Errorf("new pod not locked: %v, %v", held, err)
	}
	created, err := p.Created(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created.Before(before.Add(-time.Second)) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("Created = %v, want about %v", created, before)
	}
	// Seen from another process it is an embryo; no staging leftovers.
	q, err := Get(ctx, dataDir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if q.State != Embryo {
		t.Errorf("state seen by Get = %v, want embryo", q.State)
	}
	if names := podsIn(t, dataDir, "embryo"); !slices.Equal(names, []string{p.UUID}) {
		t.Errorf("embryo/ holds %v", names)
	}
	for _, d := range stateDirs {
		if !exists(filepath.Join(dataDir, PodsDir, d)) {
			t.Errorf("state directory %s not created", d)
		}
	}
}

// TestTransitions walks pods through their lifecycle, checking after each
// step where the pod is, what it reads as from another process, and
// whether the Pod holds the lock.
func TestTransitions(t *testing.T) {
	type step struct {
		op      string
		wantErr error  // class or sentinel
		dir     string // where the pod is afterwards
		state   State  // as Get sees it afterwards
		locked  bool   // p holds the lock afterwards
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "run after prepare (nscn run)",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToRun", dir: "run", state: Running, locked: true},
				{op: "Unlock", dir: "run", state: Exited},
				{op: "ToExitedGarbage", dir: "exited-garbage", state: ExitedGarbage},
				{op: "ToGarbage", dir: "garbage", state: Garbage},
			},
		},
		{
			name: "prepare then run-prepared",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToPrepared", dir: "prepared", state: Prepared},
				{op: "ToRun", dir: "run", state: Running, locked: true},
			},
		},
		{
			name: "prepared pod expires",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToPrepared", dir: "prepared", state: Prepared},
				{op: "ToGarbage", dir: "garbage", state: Garbage},
			},
		},
		{
			name: "stage0 gives up preparing",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToGarbage", dir: "garbage", state: Deleting, locked: true},
			},
		},
		{
			name: "aborted prepare is discarded by another process",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "Unlock", dir: "prepare", state: AbortedPrepare},
				{op: "ToGarbage", dir: "garbage", state: Garbage},
			},
		},
		{
			name: "prepared straight from embryo is refused",
			steps: []step{
				{op: "ToPrepared", wantErr: errdefs.ErrFailedPrecondition, dir: "embryo", state: Embryo, locked: true},
			},
		},
		{
			name: "run straight from embryo is refused",
			steps: []step{
				{op: "ToRun", wantErr: errdefs.ErrFailedPrecondition, dir: "embryo", state: Embryo, locked: true},
			},
		},
		{
			name: "preparing needs the lock",
			steps: []step{
				{op: "Unlock", dir: "embryo", state: AbortedPrepare},
				{op: "ToPreparing", wantErr: errdefs.ErrFailedPrecondition, dir: "embryo", state: AbortedPrepare},
			},
		},
		{
			name: "running pod cannot be marked exited by its own lock holder twice",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToRun", dir: "run", state: Running, locked: true},
				{op: "ToRun", wantErr: errdefs.ErrFailedPrecondition, dir: "run", state: Running, locked: true},
			},
		},
		{
			name: "exited pod goes through exited-garbage",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "ToRun", dir: "run", state: Running, locked: true},
				{op: "Unlock", dir: "run", state: Exited},
				{op: "ToGarbage", wantErr: errdefs.ErrFailedPrecondition, dir: "run", state: Exited},
				{op: "ToPrepared", wantErr: errdefs.ErrFailedPrecondition, dir: "run", state: Exited},
			},
		},
		{
			name: "aborted prepare cannot be run",
			steps: []step{
				{op: "ToPreparing", dir: "prepare", state: Preparing, locked: true},
				{op: "Unlock", dir: "prepare", state: AbortedPrepare},
				{op: "ToRun", wantErr: errdefs.ErrFailedPrecondition, dir: "prepare", state: AbortedPrepare},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := t.TempDir()
			p, err := NewPod(ctx, dataDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Unlock() })
			for i, s := range tt.steps {
				ops := map[string]func(context.Context) error{
					"ToPreparing":     p.ToPreparing,
					"ToPrepared":      p.ToPrepared,
					"ToRun":           p.ToRun,
					"ToExitedGarbage": p.ToExitedGarbage,
					"ToGarbage":       p.ToGarbage,
					"Unlock":          func(context.Context) error { return p.Unlock() },
				}
				err := ops[s.op](ctx)
				if s.wantErr == nil && err != nil {
					t.Fatalf("step %d %s: %v", i, s.op, err)
				}
				if s.wantErr != nil && !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d %s: got %v, want %v", i, s.op, err, s.wantErr)
				}
				if want := podPath(dataDir, s.dir, p.UUID); p.Path != want || !exists(want) {
					t.Fatalf("step %d %s: pod at %s (exists %v), want %s", i, s.op, p.Path, exists(p.Path), want)
				}
				if p.Locked() != s.locked {
					t.Fatalf("step %d %s: Locked = %v, want %v", i, s.op, p.Locked(), s.locked)
				}
				q, err := Get(ctx, dataDir, p.UUID)
				if err != nil {
					t.Fatalf("step %d %s: Get: %v", i, s.op, err)
				}
				if q.State != s.state {
					t.Fatalf("step %d %s: state %v, want %v", i, s.op, q.State, s.state)
				}
			}
		})
	}
}

// TestDerivedState reads pods left in each state directory, locked or
// not by another open file description.
func TestDerivedState(t *testing.T) {
	tests := []struct {
		dir    string
		locked bool
		want   State
	}{
		{dir: "embryo", locked: true, want: Embryo},
		{dir: "embryo", locked: false, want: AbortedPrepare},
		{dir: "prepare", locked: true, want: Preparing},
		{dir: "prepare", locked: false, want: AbortedPrepare},
		{dir: "prepared", locked: false, want: Prepared},
		{dir: "prepared", locked: true, want: Prepared},
		{dir: "run", locked: true, want: Running},
		{dir: "run", locked: false, want: Exited},
		{dir: "exited-garbage", locked: false, want: ExitedGarbage},
		{dir: "exited-garbage", locked: true, want: Deleting},
		{dir: "garbage", locked: false, want: Garbage},
		{dir: "garbage", locked: true, want: Deleting},
	}
	for _, tt := range tests {
		name := tt.dir + "/unlocked"
		if tt.locked {
			name = tt.dir + "/locked"
		}
		t.Run(name, func(t *testing.T) {
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
			if p.State != tt.want {
				t.Errorf("State = %v, want %v", p.State, tt.want)
			}
			pods, err := List(ctx, dataDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) != 1 || pods[0].State != tt.want {
				t.Errorf("List = %v, want one %v pod", pods, tt.want)
			}
		})
	}
}

// TestRunningWhileAnotherProcessHoldsTheLock is the stage1 case: the lock
// holder is another process, and the pod exits when it does.
func TestRunningWhileAnotherProcessHoldsTheLock(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "run")
	cmd, in, out := startHelper(t, "hold", podPath(dataDir, "run", id), "")
	waitLine(t, out, "held")
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != Running {
		t.Fatalf("State = %v while another process holds the lock, want running", p.State)
	}
	if err := p.ToExitedGarbage(ctx); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("marking a running pod: %v, want ErrLocked", err)
	}
	if err := Remove(ctx, p); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("removing a running pod: %v, want FailedPrecondition", err)
	}
	_ = in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := p.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p.State != Exited {
		t.Fatalf("State = %v after the holder exited, want exited", p.State)
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	ids := []string{
		"1a2b3c4d-0000-4000-8000-000000000001",
		"1a2b3c4d-0000-4000-8000-000000000002",
		"9f000000-0000-4000-8000-000000000003",
	}
	mkPodAt(t, dataDir, "prepared", ids[0])
	mkPodAt(t, dataDir, "run", ids[1])
	mkPodAt(t, dataDir, "garbage", ids[2])
	// Entries that are not pods are ignored.
	mkPodAt(t, dataDir, "run", "1a2b3c4d-not-a-uuid")
	mkPodAt(t, dataDir, "embryo", stagingPrefix+"1a2b3c4d-0000-4000-8000-000000000009")
	if err := os.WriteFile(filepath.Join(dataDir, PodsDir, "run", "1A2B3C4D-0000-4000-8000-000000000004"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		query   string
		want    string
		wantErr error
		errText string
	}{
		{name: "full UUID", query: ids[1], want: ids[1]},
		{name: "upper-case full UUID", query: strings.ToUpper(ids[2]), want: ids[2]},
		{name: "unique prefix", query: "9f", want: ids[2]},
		{name: "unique prefix across the dash", query: "1a2b3c4d-0000-4000-8000-0000000000", wantErr: errdefs.ErrInvalidArgument, errText: "ambiguous"},
		{name: "unique long prefix", query: "1a2b3c4d-0000-4000-8000-000000000002", want: ids[1]},
		{name: "prefix without dashes", query: "1a2b3c4d00004000800000000000000", wantErr: errdefs.ErrInvalidArgument, errText: "matches 2 pods"},
		{name: "prefix without dashes, unique", query: "1a2b3c4d000040008000000000000001", want: ids[0]},
		{name: "ambiguous prefix", query: "1a2b", wantErr: errdefs.ErrInvalidArgument, errText: "ambiguous"},
		{name: "no match", query: "ffff", wantErr: errdefs.ErrNotFound},
		{name: "full UUID of no pod", query: "00000000-0000-4000-8000-000000000000", wantErr: errdefs.ErrNotFound},
		{name: "empty", query: "", wantErr: errdefs.ErrInvalidArgument},
		{name: "only dashes", query: "--", wantErr: errdefs.ErrInvalidArgument},
		{name: "not hex", query: "xyz", wantErr: errdefs.ErrInvalidArgument},
		{name: "path traversal", query: "../run", wantErr: errdefs.ErrInvalidArgument},
		{name: "too long", query: ids[0] + "0", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Get(ctx, dataDir, tt.query)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get(%q) = %v, want %v", tt.query, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not mention %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%q): %v", tt.query, err)
			}
			if p.UUID != tt.want {
				t.Errorf("Get(%q) = %s, want %s", tt.query, p.UUID, tt.want)
			}
		})
	}
}

func TestListEmptyAndMissing(t *testing.T) {
	ctx := context.Background()
	pods, err := List(ctx, filepath.Join(t.TempDir(), "nothing-here"))
	if err != nil || len(pods) != 0 {
		t.Fatalf("List of a missing data dir = %v, %v", pods, err)
	}
	if _, err := List(ctx, ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("List of an empty data dir name: %v", err)
	}
}

func TestListSortedAllStates(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	var want []string
	for _, d := range stateDirs {
		want = append(want, mkPod(t, dataDir, d))
	}
	slices.Sort(want)
	pods, err := List(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pods {
		got = append(got, p.UUID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

// TestPodMovedByAnotherProcess: a Pod whose directory moved since it was
// loaded finds it again.
func TestPodMovedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "run")
	writeManifest(t, podPath(dataDir, "run", id), "app")
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	// Another process marks it.
	other, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.ToExitedGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Manifest(ctx); err != nil {
		t.Fatalf("Manifest after the pod moved: %v", err)
	}
	if p.Path != other.Path {
		t.Errorf("Path = %s after relocation, want %s", p.Path, other.Path)
	}
	// A transition of the stale Pod sees the new state.
	q, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	q.setDir("run") // stale snapshot
	if err := q.ToExitedGarbage(ctx); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("stale ToExitedGarbage: %v, want FailedPrecondition", err)
	}
	if q.dir != dirExitedGarbage {
		t.Errorf("stale Pod not relocated: %s", q.dir)
	}
	if err := q.ToGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Refresh(ctx); err != nil || p.State != Garbage {
		t.Fatalf("Refresh = %v, state %v; want garbage", err, p.State)
	}
	if err := os.RemoveAll(q.Path); err != nil {
		t.Fatal(err)
	}
	if err := p.Refresh(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Refresh of a removed pod: %v, want NotFound", err)
	}
}

func TestLockHandoff(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	p, err := NewPod(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Unlock() }()
	if err := p.ToPreparing(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.ToRun(ctx); err != nil {
		t.Fatal(err)
	}
	fd, err := p.KeepLockOnExec()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := p.LockFd(); got != fd || fd < 3 {
		t.Errorf("KeepLockOnExec = %d, LockFd = %d", fd, got)
	}
	if p.LockFile() == nil {
		t.Error("LockFile is nil while held")
	}
	if err := p.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.LockFd(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("LockFd without the lock: %v", err)
	}
	if _, err := p.KeepLockOnExec(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("KeepLockOnExec without the lock: %v", err)
	}
	// Lock waits for another holder.
	other := holdLock(t, p.Path)
	released := make(chan struct{})
	time.AfterFunc(30*time.Millisecond, func() {
		defer close(released)
		_ = other.Unlock()
	})
	defer func() { <-released }() // before holdLock's cleanup closes it
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Lock(wctx); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if p.State != Running {
		t.Errorf("State after Lock in run/ = %v", p.State)
	}
}

func TestTryLockBusy(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, "prepared")
	holdLock(t, podPath(dataDir, "prepared", id))
	p, err := Get(ctx, dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ToRun(ctx); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("ToRun of a prepared pod another process is starting: %v, want ErrLocked", err)
	}
	if p.Locked() {
		t.Error("Pod holds a lock after a failed ToRun")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.Lock(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock with a deadline: %v", err)
	}
}

func TestNewPodErrors(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		dataDir string
		wantErr error
	}{
		{name: "empty data dir", ctx: ctx, dataDir: "", wantErr: errdefs.ErrInvalidArgument},
		{name: "canceled", ctx: canceled, dataDir: t.TempDir(), wantErr: context.Canceled},
		{name: "data dir is a file", ctx: ctx, dataDir: file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPod(tt.ctx, tt.dataDir)
			if err == nil {
				_ = p.Unlock()
				t.Fatal("NewPod succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s := Embryo; s <= Deleting; s++ {
		if strings.HasPrefix(s.String(), "state(") {
			t.Errorf("state %d has no name", int(s))
		}
	}
	if State(0).String() != "state(0)" {
		t.Errorf("zero state = %q", State(0))
	}
}

// writeManifest writes a pod manifest with the given apps in dir.
func writeManifest(t testing.TB, dir string, apps ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[`)
	for i, a := range apps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"` + a + `","image":{"name":"example.com/` + a + `","id":"sha512-` + strings.Repeat("ab", 64) + `","labels":[{"name":"os","value":"linux"},{"name":"version","value":"1.0"}]}}`)
	}
	b.WriteString(`]}`)
	if err := os.WriteFile(filepath.Join(dir, stage1abi.PodManifestFile), []byte(b.String()), 0o640); err != nil {
		t.Fatal(err)
	}
}
