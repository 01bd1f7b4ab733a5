// Package entrypoint implements the four stage1-fly entrypoints — run,
// enter, stop and gc — on top of the pure logic of the stage1 library (internal/stage1:
// abiargs, appspec, appmount) and package fly. The mains
// under stage1-fly/cmd only parse argv, call in here and exit.
//
// It runs in stage1, on the host, as root: run creates a mount namespace,
// mounts and chroots; enter chroots; stop signals; gc unmounts. Linux only.
//
// # Process tree
//
//	nscn run (stage0) ──exec──▶ run           host namespaces; holds RKT_LOCK_FD
//	                             ├─ pod thread an OS thread of run, locked to its
//	                             │             goroutine, in a new mount namespace
//	                             │             and chrooted into the app rootfs;
//	                             │             its thread id is the pod's pid
//	                             └─ pre-start, then app, then post-stop,
//	                                each forked by the pod thread
//
// Every child is started with Pdeathsig SIGKILL from the pod thread, which
// lives until the last of them has been waited for, so killing run kills
// the app. Nothing else is namespaced: the app shares the host's network,
// PID, IPC, UTS, user and cgroup namespaces.
//
// # The pod thread
//
// run does the host-side work (the pod manifest, the mount plan, empty
// volumes) on its main goroutine, then starts a goroutine that locks its
// OS thread for good and calls unshare(CLONE_FS|CLONE_NEWNS): from then on
// that thread alone has the pod's mount namespace, root, working directory
// and umask; run's other threads keep the host's. The pod thread makes /
// a slave, binds the rootfs onto itself, applies the mount plan, chroots,
// and reports its thread id; the main goroutine then writes the pid file
// (with host paths, which the pod thread can no longer resolve) and waits
// for the pod thread's result, which it records in the status file:
//
//	main goroutine                        pod thread
//	 │── start ──────────────────────────▶ │ unshare, mounts, chroot
//	 │◀──────────────────── ready (tid) ── │
//	 │ write the pid file                  │ resolve creds, run pre-start
//	 │                                     │ start the app, wait
//	 │                                     │ run post-stop
//	 │◀──── result (status, app ran) ───── │ the goroutine returns: the
//	 │ write the status file, exit S       │ runtime ends the thread
//
// The pid file names the thread: /proc/<tid>/root and /proc/<tid>/ns/mnt
// are the pod's, which is what enter needs, and kill(2) or a pidfd signal
// with PIDFD_SIGNAL_THREAD_GROUP reaches all of run, which is what stop
// needs. SIGTERM, SIGINT and SIGHUP sent to run are forwarded to the
// running pre-start handler or app; one that arrives before the app
// starts cancels it. SIGKILL (stop --force) ends run, pod thread and all.
package entrypoint
