package caps

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Everything below acts on the calling thread only: capabilities are a
// per-thread attribute. Callers lock the goroutine to its thread
// (runtime.LockOSThread) and exec from that same thread.

// KernelLast returns the highest capability the running kernel knows. It
// probes PR_CAPBSET_READ rather than reading
// /proc/sys/kernel/cap_last_cap, so that it works in a chroot without
// /proc.
func KernelLast() (Cap, error) {
	last := Cap(0)
	for c := Cap(0); c < 64; c++ {
		_, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return 0, os.NewSyscallError("prctl PR_CAPBSET_READ", err)
		}
		last = c
	}
	return last, nil
}

// DropBounding removes from the calling thread's bounding set every
// capability up to last that is not in keep. It needs CAP_SETPCAP.
func DropBounding(keep Set, last Cap) error {
	for c := Cap(0); c <= last; c++ {
		if keep.Has(c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP "+c.String(), err)
		}
	}
	return nil
}

// ThreadSets returns the effective, permitted and inheritable sets of the
// calling thread (capget(2)).
func ThreadSets() (effective, permitted, inheritable Set, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, 0, os.NewSyscallError("capget", err)
	}
	join := func(lo, hi uint32) Set { return Set(uint64(hi)<<32 | uint64(lo)) }
	return join(data[0].Effective, data[1].Effective),
		join(data[0].Permitted, data[1].Permitted),
		join(data[0].Inheritable, data[1].Inheritable), nil
}

// SetThread sets the effective, permitted and inheritable sets of the
// calling thread (capset(2)). The kernel refuses to add to the permitted
// set, and wants the inheritable set inside the bounding set.
func SetThread(effective, permitted, inheritable Set) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i, shift := range []uint{0, 32} {
		data[i] = unix.CapUserData{
			Effective:   uint32(effective >> shift),   //nolint:gosec // G115: the low and the high 32 bits of the set, by design
			Permitted:   uint32(permitted >> shift),   //nolint:gosec // G115: the low and the high 32 bits of the set, by design
			Inheritable: uint32(inheritable >> shift), //nolint:gosec // G115: the low and the high 32 bits of the set, by design
		}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		// Name what the thread lacks: the kernel refuses the whole call.
		if _, have, _, gerr := ThreadSets(); gerr == nil && permitted&^have != 0 {
			return fmt.Errorf("capset: the thread cannot gain %s: %w", permitted&^have, os.NewSyscallError("capset", err))
		}
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// SetAmbient makes s the ambient set of the calling thread: it clears the
// set, then raises each capability of s, which must be permitted and
// inheritable already.
func SetAmbient(s Set) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	for _, c := range s.Caps() {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_CAP_AMBIENT_RAISE "+c.String(), err)
		}
	}
	return nil
}
