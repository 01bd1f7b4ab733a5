// Package pod manages pod directories on the host and derives each pod's
// state, for stage0: creating a pod, moving it through its lifecycle,
// finding pods by UUID or prefix, reading what stage1 left in it (pid, app
// exit statuses, the pod manifest), and garbage-collecting exited pods.
//
// A pod lives in <dataDir>/pods/<state dir>/<UUID>, where the state
// directory is one of embryo, prepare, prepared, run, exited-garbage and
// garbage. A pod's State is never stored: it is derived from the state
// directory the pod is in and from whether its directory is exclusively
// flock(2)ed (package lock). For example a pod in run/ is Running exactly
// while its lock is held, by stage1, and Exited once it is not. The State
// field of a Pod is a snapshot taken when the Pod was loaded; Refresh
// derives it again.
//
// Every move between state directories is a rename(2) of the pod
// directory, done only by the holder of the pod's lock, followed by an
// fsync of both parent directories. A process that finds a pod gone from
// where it last saw it looks for it again in the other state directories.
// Documentation/pod-lifecycle.md describes the states, the transitions,
// who holds the lock when, and what garbage collection does.
//
// What the package does not do: it does not render images, write the pod
// manifest, run stage1 or decide its arguments (stage0 does), and it does
// not mount anything; GC and Remove unmount what is left under a pod
// directory (mountplan.UnmountPod, or a caller's function, then
// mountplan.UnmountAll for what the deletion still finds mounted) and
// call a caller's function for the stage1 gc entrypoint.
//
// The package runs in stage0. It needs write access to the data directory;
// unmounting leftovers needs root. It is Linux-only, like package lock.
package pod
