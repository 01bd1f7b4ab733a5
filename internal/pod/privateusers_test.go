package pod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// account is a passwd(5) line of a host user with uid id.
func account(id int) string { return fmt.Sprintf("svc:x:%d:%d::/:/bin/false\n", id, id) }

func TestAllocatePrivateUsers(t *testing.T) {
	const first = 1 << 20
	tests := []struct {
		name string
		// others are ranges other pods recorded, by state directory.
		others map[string]string
		passwd string
		start  uint32
		want   uint32 // base; 0 for ErrUnavailable
	}{
		{name: "empty pool start", start: 0, want: first},
		{name: "random start", start: 2, want: first + 2*idrange.Size},
		{name: "taken by a running pod", others: map[string]string{dirRun: "1048576:65536"}, want: first + idrange.Size},
		{name: "taken by an exited pod awaiting gc", others: map[string]string{dirExitedGarbage: "1048576:65536", dirPrepared: "1114112:65536"}, want: first + 2*idrange.Size},
		{name: "a host account inside", passwd: account(1048600), want: first + idrange.Size},
		{name: "wraps around", start: 3, others: map[string]string{dirRun: "1245184:65536"}, want: first},
		{
			name:   "full",
			others: map[string]string{dirRun: "1048576:65536", dirPrepared: "1114112:65536", dirGarbage: "1179648:65536"},
			passwd: account(1245184),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dataDir := t.TempDir()
			for dir, r := range tt.others {
				id := mkPod(t, dataDir, dir)
				if err := os.WriteFile(filepath.Join(podPath(dataDir, dir, id), stage1abi.PrivateUsersFile), []byte(r+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			passwd := filepath.Join(t.TempDir(), "passwd")
			if err := os.WriteFile(passwd, []byte("root:x:0:0::/:/bin/sh\n"+tt.passwd), 0o600); err != nil {
				t.Fatal(err)
			}
			a := rangeAllocator{
				first: first, end: first + 4*idrange.Size, accounts: []string{passwd, "/nonexistent/group"},
				start: func(n uint32) uint32 {
					if n != 4 {
						t.Errorf("start(%d), want 4 slots", n)
					}
					return tt.start
				},
			}
			p, err := NewPod(ctx, dataDir)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = p.Unlock() }()
			got, err := p.allocatePrivateUsers(ctx, a)
			if tt.want == 0 {
				if !errors.Is(err, errdefs.ErrUnavailable) {
					t.Fatalf("allocate = %v, %v; want unavailable", got, err)
				}
				if _, err := os.Stat(filepath.Join(p.Path, stage1abi.PrivateUsersFile)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a record was left behind: %v", err)
				}
				return
			}
			if err != nil || got != (idrange.Range{Base: tt.want, Count: idrange.Size}) {
				t.Fatalf("allocate = %v, %v; want base %d", got, err, tt.want)
			}
			back, err := p.PrivateUsers()
			if err != nil || back != got {
				t.Errorf("PrivateUsers() = %v, %v; want the record %v", back, err, got)
			}
			again, err := p.allocatePrivateUsers(ctx, a)
			if err != nil || again != got {
				t.Errorf("a second allocation = %v, %v; want the pod's range %v kept", again, err, got)
			}
		})
	}
}

// TestAllocatePrivateUsersConcurrently gives many pods their ranges at
// once from a pool just big enough: each must get a range of its own.
func TestAllocatePrivateUsersConcurrently(t *testing.T) {
	const pods = 16
	ctx := context.Background()
	dataDir := t.TempDir()
	a := rangeAllocator{first: 1 << 20, end: 1<<20 + pods*idrange.Size, start: func(uint32) uint32 { return 0 }}
	var wg sync.WaitGroup
	got := make([]idrange.Range, pods)
	errs := make([]error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := NewPod(ctx, dataDir)
			if err != nil {
				errs[i] = err
				return
			}
			defer func() { _ = p.Unlock() }()
			got[i], errs[i] = p.allocatePrivateUsers(ctx, a)
		}()
	}
	wg.Wait()
	seen := map[idrange.Range]bool{}
	for i, r := range got {
		if errs[i] != nil {
			t.Fatalf("pod %d: %v", i, errs[i])
		}
		if seen[r] {
			t.Errorf("range %v given twice", r)
		}
		seen[r] = true
	}
}

func TestPrivateUsersRecordBroken(t *testing.T) {
	dataDir := t.TempDir()
	id := mkPod(t, dataDir, dirRun)
	if err := os.WriteFile(filepath.Join(podPath(dataDir, dirRun, id), stage1abi.PrivateUsersFile), []byte("0:65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Get(context.Background(), dataDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PrivateUsers(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("PrivateUsers() of a record mapping host root = %v, want invalid argument", err)
	}
}
