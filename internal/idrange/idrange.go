// Package idrange is a range of host user and group IDs that a pod's user
// namespace maps its own IDs 0…Count-1 onto (user_namespaces(7)): the
// value of the stage1 run entrypoint's --private-users flag and of the
// pod directory's record of it (stage1abi.PrivateUsersFile), written
// BASE:COUNT in decimal, as systemd-nspawn's --private-users takes it.
//
// It only parses, formats and checks ranges; stage0 allocates them
// (internal/pod) and stage1-nspawn applies them. It runs in any stage
// and needs no privileges.
package idrange

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Size is the number of IDs of every range nscn allocates: the 16-bit ID
// space an image's files and users are written for, as rkt and
// systemd-nspawn's "pick" give a container.
const Size = 65536

// Range maps IDs 0…Count-1 inside a user namespace to Base…Base+Count-1
// outside it. The zero Range is no user namespace.
type Range struct {
	Base, Count uint32
}

// maxID is the highest ID a range may reach: (uid_t)-1 is "no ID" to the
// kernel and may not be mapped.
const maxID = 1<<32 - 2

// Parse reads BASE:COUNT. The range must lie inside 1…2^32-2: Base 0
// would map the pod's root onto the host's.
func Parse(s string) (Range, error) {
	b, c, ok := strings.Cut(s, ":")
	if !ok {
		return Range{}, errdefs.InvalidArgument("ID range %q: want BASE:COUNT", s)
	}
	base, err := strconv.ParseUint(b, 10, 32)
	if err != nil {
		return Range{}, errdefs.InvalidArgument("ID range %q: base is not a decimal ID", s)
	}
	count, err := strconv.ParseUint(c, 10, 32)
	if err != nil {
		return Range{}, errdefs.InvalidArgument("ID range %q: count is not a decimal number", s)
	}
	r := Range{Base: uint32(base), Count: uint32(count)}
	if err := r.Check(); err != nil {
		return Range{}, fmt.Errorf("ID range %q: %w", s, err)
	}
	return r, nil
}

// Check refuses a range that maps host root, is empty, or reaches past
// the highest ID.
func (r Range) Check() error {
	switch {
	case r.Base == 0:
		return errdefs.InvalidArgument("base 0 would make the pod's root the host's")
	case r.Count == 0:
		return errdefs.InvalidArgument("empty range")
	case uint64(r.Base)+uint64(r.Count)-1 > maxID:
		return errdefs.InvalidArgument("the range ends past ID %d", uint64(maxID))
	}
	return nil
}

// String is BASE:COUNT, what Parse reads.
func (r Range) String() string { return fmt.Sprintf("%d:%d", r.Base, r.Count) }

// IsZero reports whether r is no range (no user namespace).
func (r Range) IsZero() bool { return r == Range{} }

// Overlaps reports whether r and o share an ID.
func (r Range) Overlaps(o Range) bool {
	return uint64(r.Base) < uint64(o.Base)+uint64(o.Count) && uint64(o.Base) < uint64(r.Base)+uint64(r.Count)
}

// Contains reports whether the host ID id lies in r.
func (r Range) Contains(id uint32) bool {
	return id >= r.Base && uint64(id) < uint64(r.Base)+uint64(r.Count)
}

// Shift maps id, an ID inside the namespace, to the host: Base+id. ok is
// false when id is outside 0…Count-1 (the kernel shows such an ID as the
// overflow ID, nobody).
func (r Range) Shift(id uint32) (uint32, bool) {
	if id >= r.Count {
		return 0, false
	}
	return r.Base + id, true
}
