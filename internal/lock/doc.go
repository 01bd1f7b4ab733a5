// Package lock takes advisory locks on files and directories with flock(2),
// and hands a held lock to a child process.
//
// A flock lock belongs to an open file description, not to a process: two
// independent opens of the same path conflict even within one process, and
// every descriptor that shares the description (dup, fork, exec without
// close-on-exec) shares the lock. The lock is released when the last such
// descriptor is closed. Nose Cone relies on this to hand the pod directory
// lock from stage0 to stage1: stage0 locks the pod directory, clears
// close-on-exec on the descriptor (File.KeepOnExec) or duplicates it to a
// known number (File.DupTo), and execs stage1 with the descriptor number in
// the RKT_LOCK_FD environment variable (stage1abi.EnvLockFD). Stage1 holds
// the lock, and so marks the pod as running, until it exits.
//
// What the package does not do: it does not lock byte ranges (no fcntl or
// OFD locks), it does not detect deadlocks, and it does not work over NFS
// servers that do not emulate flock. A busy lock is reported as ErrLocked,
// which is also of the errdefs.ErrUnavailable class.
//
// The package runs in stage0 and stage1 and needs no privileges beyond
// read access to the locked path. It is Linux-only; elsewhere every call
// fails with errdefs.ErrNotImplemented.
package lock
