package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The pool of --private-users ranges: systemd's container ID range
// (0x00080000…0x6FFFFFFF, systemd's UIDS-GIDS.md), the one
// systemd-nspawn --private-users=pick and systemd-machined use, cut
// into idrange.Size slots. Slots are aligned, so that a range shows in
// ls -n as BASE plus the ID inside.
const (
	poolFirst = 0x00080000
	poolEnd   = 0x70000000 // one past the last ID
)

// rangeAllocator is AllocatePrivateUsers's world: the pool, the host's
// account files and where the first probe lands. Tests replace it.
type rangeAllocator struct {
	first, end uint32
	// accounts are files in passwd(5)/group(5) format whose IDs no range
	// may contain: a range must not give a pod's users the identity of
	// a host account.
	accounts []string
	// start picks the first slot to try, of n.
	start func(n uint32) uint32
}

var defaultAllocator = rangeAllocator{
	first: poolFirst, end: poolEnd,
	accounts: []string{"/etc/passwd", "/etc/group"},
	// A random slot rather than the lowest free one: a range freed by
	// rm is not handed to the next pod at once, which could then read
	// what the old pod left in host volumes as its own.
	start: func(n uint32) uint32 { return rand.Uint32N(n) }, //nolint:gosec // G404: spreading ranges, not a secret
}

// AllocatePrivateUsers gives the pod, which p must hold locked while it
// is being prepared, an ID range of its own for --private-users and
// records it in the pod directory (stage1abi.PrivateUsersFile). It holds
// the data directory's PrivateUsersLock while it reads every pod's
// record (every state, so a pod's range is taken until its directory is
// removed by gc or rm) and writes the new one: two concurrent prepares
// cannot pick the same range. A pod that has a range keeps it.
func (p *Pod) AllocatePrivateUsers(ctx context.Context) (idrange.Range, error) {
	return p.allocatePrivateUsers(ctx, defaultAllocator)
}

func (p *Pod) allocatePrivateUsers(ctx context.Context, a rangeAllocator) (idrange.Range, error) {
	if r, err := p.PrivateUsers(); err != nil || !r.IsZero() {
		return r, err
	}
	lk, err := lock.ExclusiveLock(ctx, filepath.Join(p.dataDir, PodsDir, stage1abi.PrivateUsersLock), lock.RegularFile)
	if err != nil {
		return idrange.Range{}, fmt.Errorf("allocate user ID range: %w", err)
	}
	defer func() { _ = lk.Close() }()
	taken, err := p.takenRanges(ctx)
	if err != nil {
		return idrange.Range{}, err
	}
	busy, err := accountIDs(a.accounts)
	if err != nil {
		return idrange.Range{}, err
	}
	r, err := a.pick(taken, busy)
	if err != nil {
		return idrange.Range{}, err
	}
	// Replaced atomically: a torn record would stop every later
	// allocation at its parse.
	if err := atomicfile.Write(p.Path, stage1abi.PrivateUsersFile, []byte(r.String()+"\n")); err != nil {
		return idrange.Range{}, fmt.Errorf("record user ID range: %w", err)
	}
	return r, nil
}

// pick returns the first free slot from a.start on, wrapping around.
func (a rangeAllocator) pick(taken []idrange.Range, busy []uint32) (idrange.Range, error) {
	n := (a.end - a.first) / idrange.Size
	if n == 0 {
		return idrange.Range{}, errdefs.Unavailable("allocate user ID range: the pool is empty")
	}
	s := a.start(n)
next:
	for i := range n {
		r := idrange.Range{Base: a.first + (s+i)%n*idrange.Size, Count: idrange.Size}
		for _, t := range taken {
			if r.Overlaps(t) {
				continue next
			}
		}
		for _, id := range busy {
			if r.Contains(id) {
				continue next
			}
		}
		return r, nil
	}
	return idrange.Range{}, errdefs.Unavailable("allocate user ID range: all %d ranges of %d…%d are taken by pods or host accounts; remove pods (nscn gc, nscn rm)", n, a.first, a.end-1)
}

// takenRanges reads every pod's range record, p's excepted.
func (p *Pod) takenRanges(ctx context.Context) ([]idrange.Range, error) {
	var out []idrange.Range
	for _, d := range stateDirs {
		names, err := readNames(stateDirPath(p.dataDir, d))
		if err != nil {
			return nil, fmt.Errorf("list user ID ranges: %w", err)
		}
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("list user ID ranges: %w", err)
			}
			if !validUUID(name) || name == p.UUID {
				continue
			}
			r, err := readPrivateUsers(podPath(p.dataDir, d, name))
			if err != nil {
				return nil, fmt.Errorf("list user ID ranges: pod %s: %w", name, err)
			}
			if !r.IsZero() {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// PrivateUsers returns the ID range recorded for the pod; the zero Range
// when it runs without --private-users.
func (p *Pod) PrivateUsers() (idrange.Range, error) { return readPrivateUsers(p.Path) }

func readPrivateUsers(dir string) (idrange.Range, error) {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return idrange.Range{}, nil // moved or removed meanwhile
	}
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read user ID range: %w", err)
	}
	defer func() { _ = root.Close() }()
	b, _, err := readRegular(root, stage1abi.PrivateUsersFile, maxSmallFile)
	if errors.Is(err, fs.ErrNotExist) {
		return idrange.Range{}, nil
	}
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read user ID range: %w", err)
	}
	r, err := idrange.Parse(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read %s: %w", stage1abi.PrivateUsersFile, err)
	}
	return r, nil
}

// accountIDs returns the numeric IDs (third field) of passwd(5) or
// group(5) files; a missing file has none.
func accountIDs(files []string) ([]uint32, error) {
	var ids []uint32
	for _, name := range files {
		f, err := os.Open(name) //nolint:gosec // G304: the host's account files
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read host accounts: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 {
				continue
			}
			if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
				ids = append(ids, uint32(id))
			}
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("read host accounts %s: %w", name, err)
		}
	}
	return ids, nil
}
