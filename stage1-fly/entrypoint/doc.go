// Package entrypoint implements the four stage1-fly entrypoints — run,
// enter, stop and gc — on top of the pure logic in package fly. The mains
// under stage1-fly/cmd only parse argv, call in here and exit.
//
// It runs in stage1, on the host, as root: run creates a mount namespace,
// mounts and chroots; enter chroots; stop signals; gc unmounts. Linux only.
//
// # Process tree
//
//	nscn run (stage0) ──exec──▶ run           host namespaces; holds RKT_LOCK_FD
//	                             └─ pod        re-exec of run (HelperArg) in a new
//	                                │          mount namespace, chrooted into the
//	                                │          app rootfs; its pid is the pod's pid
//	                                ├─ pre-start, then app, then post-stop
//
// Every child is started with Pdeathsig SIGKILL, so killing run kills the
// pod process, which kills the app. Nothing else is namespaced: the app
// shares the host's network, PID, IPC, UTS, user and cgroup namespaces.
//
// # The pod process contract
//
// run starts the pod process as exec.Cmd{Path: "/proc/self/exe"} with
// argv [argv0, HelperArg], an empty environment, the pod directory as
// working directory, SysProcAttr{Cloneflags: CLONE_NEWNS, Pdeathsig:
// SIGKILL} (and Setpgid unless --interactive), and these descriptors:
//
//	fd 0      run's stdin with --interactive, /dev/null otherwise
//	fd 1, 2   run's stdout and stderr (the app's too; logs go to fd 2)
//	fd 3      config pipe, read end: one JSON helperConfig, then EOF
//	fd 4      report pipe, write end: JSON lines, one report each
//	fd 5      a dup of the pod lock (RKT_LOCK_FD), held until exit
//
// The pod process marks fds 3-5 close-on-exec before anything else, so
// none of them reaches the app. The exchange:
//
//	run                                   pod process
//	 │── config (fd 3), close ───────────▶ │ make / rslave, bind the rootfs on
//	 │                                     │ itself, apply the mount plan,
//	 │                                     │ chroot into the rootfs
//	 │◀──────────── {"event":"ready"} ──── │
//	 │ write the pid file (pod pid)        │ resolve creds, run pre-start
//	 │◀── {"event":"started","pid":N} ──── │ start the app, wait
//	 │                                     │ run post-stop
//	 │◀─ {"event":"exited","status":S} ─── │ exit 0
//	 │ write the status file, exit S       │
//
// Any failure is sent instead as {"event":"failed","error":…,"class":…}
// (class is an errdefs class name), after which the pod process exits
// ExitRuntime and run prints the error. SIGTERM, SIGINT and SIGHUP sent to
// run are forwarded to the pod process, which forwards them to the running
// pre-start handler or app.
package entrypoint
