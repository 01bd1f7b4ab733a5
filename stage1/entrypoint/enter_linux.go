package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// appProcessRoot returns an O_PATH handle on the root of a process of the
// app, and its pid: a process whose PID namespace is a child of the
// pod's (that of podProc, /proc/PID) — each app has one of its own, see
// execApp — and whose root is the app's rootfs (appRoot, as the pod sees
// it: same device and inode), so in the app's own mount namespace. A
// process still on its way into the app (not pivoted yet), or the app's
// shim (in the pod's PID namespace, in the pod's root), does not match.
//
// In a pod run with --pid=parent the app's processes are in the host's
// PID namespace (run's spawner started them): a process in enter's own
// PID namespace matches too when hostApp, given its /proc/PID, says it is
// the app's (hostPIDApp: in the app's unit's cgroup).
func appProcessRoot(podProc string, appRoot *os.File, hostApp func(proc string) bool) (*os.File, int, error) {
	var podNS, want unix.Stat_t
	if err := unix.Stat(filepath.Join(podProc, "ns", "pid"), &podNS); err != nil {
		return nil, 0, &os.PathError{Op: "stat", Path: filepath.Join(podProc, "ns", "pid"), Err: err}
	}
	if err := unix.Fstat(int(appRoot.Fd()), &want); err != nil {
		return nil, 0, &os.PathError{Op: "fstat", Path: "app rootfs", Err: err}
	}
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, 0, err
	}
	for _, p := range procs {
		r, err := os.OpenFile(filepath.Join(p, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a /proc path
		if err != nil {
			continue // it exited, or is not ours to see
		}
		var got unix.Stat_t
		if unix.Fstat(int(r.Fd()), &got) != nil || got.Dev != want.Dev || got.Ino != want.Ino || (!pidNSChildOf(p, podNS) && !hostApp(p)) {
			_ = r.Close()
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		return r, pid, nil
	}
	return nil, 0, errdefs.NotFound("no process of the app is running")
}

// hostPIDApp reports whether the process proc (/proc/PID) is a process
// of app run in the host's PID namespace (--pid=parent): in enter's own
// PID namespace and in the cgroup of app's unit below the pod's, where
// run's spawner put it (a process of the host's whose root happens to be
// the app's rootfs is not taken for the app's).
func hostPIDApp(proc string, podPID int, app string) bool {
	pid, err := strconv.Atoi(filepath.Base(proc))
	if err != nil {
		return false
	}
	if same, err := sameNS(pid, os.Getpid(), "pid"); err != nil || !same {
		return false
	}
	_, err = appUnitCgroup(podPID, pid, app)
	return err == nil
}

// pidNSChildOf reports whether the PID namespace of the process proc
// (/proc/PID) is a child of the namespace parent (NS_GET_PARENT, ioctl_ns(2)).
func pidNSChildOf(proc string, parent unix.Stat_t) bool {
	f, err := os.Open(filepath.Join(proc, "ns", "pid")) //nolint:gosec // G304: a /proc path
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_PARENT)
	if err != nil {
		return false // the host's namespace, or one whose parent we do not own
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Dev == parent.Dev && st.Ino == parent.Ino
}

// appUnitCgroup returns the cgroup, as /proc/PID/cgroup spells it on the
// host, of the app's unit on a unified host: that of appPID, a process of
// the app, which must be the app's unit (units.ServiceName) below the
// cgroup of the pod's systemd (podPID; it sits in init.scope, a child of
// the pod's root cgroup). The app cannot move itself (its /sys/fs/cgroup
// is read-only), but enter does not take the pod's word for it.
func appUnitCgroup(podPID, appPID int, app string) (string, error) {
	read := func(pid int) (string, error) {
		f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
		if err != nil {
			return "", err
		}
		defer func() { _ = f.Close() }()
		ms, err := cgroup.ParseProcCgroup(f)
		if err != nil {
			return "", err
		}
		if p, ok := cgroup.UnifiedPath(ms); ok {
			return p, nil
		}
		return "", errdefs.NotFound("process %d has no cgroup v2 membership", pid)
	}
	pod, err := read(podPID)
	if err != nil {
		return "", fmt.Errorf("find the pod's cgroup: %w", err)
	}
	cg, err := read(appPID)
	if err != nil {
		return "", fmt.Errorf("find app %s's cgroup: %w", app, err)
	}
	return checkAppUnitCgroup(pod, cg, app)
}

// checkAppUnitCgroup returns cg if it is the cgroup of app's unit below
// the pod's root cgroup, pod being the cgroup of the pod's systemd.
func checkAppUnitCgroup(pod, cg, app string) (string, error) {
	if path.Base(pod) == "init.scope" {
		pod = path.Dir(pod)
	}
	if !strings.HasPrefix(cg, strings.TrimSuffix(pod, "/")+"/") || path.Base(cg) != units.ServiceName(app) || path.Clean(cg) != cg {
		return "", errdefs.FailedPrecondition("app %s runs in cgroup %s, not in its unit's below the pod's %s", app, cg, pod)
	}
	return cg, nil
}

// enterNamespaces are the namespaces that enter joins with setns(2):
// the pod's pid 1's, but for pid and ipc, which are the app's (a process
// of the app's: its own PID namespace, and the pod's IPC namespace or
// the host's with --ipc=parent). None of them needs a single-threaded caller; each applies
// to the calling thread only (for pid: to its future children), so enter
// locks its goroutine to the thread and starts the helper from it. The
// mount namespace is joined by the helper (EnterHelper), on a thread with
// a filesystem context of its own.
var enterNamespaces = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"pid", unix.CLONE_NEWPID},
}

// EnterHelperArg selects the enter helper (EnterHelper) as argv[1] of
// the enter binary. Only stage1/cmd/enter checks it.
const EnterHelperArg = "--nscn-enter-helper"

// Descriptors of the enter helper contract.
const (
	enterMountFD  = 3 // the mount namespace of an app process (/proc/PID/ns/mnt)
	enterConfigFD = 4 // read end of a pipe carrying one enterConfig as JSON
)

// enterConfig is what Enter hands its helper.
type enterConfig struct {
	Policy  *isolate.Policy `json:"policy"`
	Cgroups []string        `json:"cgroups,omitempty"` // host dirs of the app's cgroups (v1)
	// The helper enters an app process's mount namespace, whose root
	// must be RootDev and RootIno (the app's rootfs).
	RootDev, RootIno uint64 `json:",omitempty"`
	// Creds are the app's, as recorded when it started (CredsFile),
	// never resolved again in the app's writable rootfs.
	Creds isolate.Creds `json:"creds"`
	// NewCgroupNS: the helper, started in the app's unit cgroup (unified
	// host), takes a cgroup namespace rooted there, as the app has.
	NewCgroupNS bool            `json:"newCgroupNS,omitempty"`
	Spec        appspec.AppSpec `json:"spec"`
	Cmd         []string        `json:"cmd"`
	Debug       bool            `json:"debug,omitempty"`
}

// Enter implements the enter entrypoint, from the pod directory: it runs
// the command in the app, confined exactly like the app, and returns its
// status. The same policy as the app's is computed again from the pod
// manifest (outside the pod's reach) and the run flags run recorded
// (sdpod.IsolationFile): the app's capability bounding set and sets, its
// no_new_privs, its seccomp filter and oom_score_adj, its cgroups, the
// pod's namespaces but for the app's own PID and mount namespaces (those
// of a running process of the app), the app's root, the user and groups the app started with (CredsFile),
// working directory and environment (with enter's TERM when the app sets
// none). No descriptor of the caller's but stdin, stdout and stderr
// reaches the command. rkt's enter ran commands as unconfined root; its
// three CVEs came from that.
//
// Process tree and messages:
//
//	enter (host)                        enter helper
//	  find a process of the app (its
//	  own PID namespace, its root the
//	  app's rootfs); none: refuse
//	  lock thread, setns cgroup, uts,
//	  net of the pod's pid 1, pid and
//	  ipc of the app's process
//	  start /proc/self/exe ──────────▶ born in the app's PID namespace;
//	                                    fd 3: the app process's mount
//	                                    namespace
//	  write enterConfig on fd 4 ─────▶ read it; join the app's cgroups
//	                                    (host paths); unshare(CLONE_FS),
//	                                    setns(3), check that its root is
//	                                    the app's rootfs; resolve the
//	                                    command there; isolate.Exec ─▶ the
//	                                    command, as the recorded user
//	  wait, return its status ◀──────── exit status (254 and one line on
//	                                    stderr if the helper failed)
//
// The command sees the app's processes and its own, and no other app's;
// it ends with the app's PID namespace, when the app ends.
func Enter(ctx context.Context, log *slog.Logger, args abiargs.EnterArgs, term string) (int, error) {
	log = log.With("app", args.AppName, "pid", args.PID)
	// Whatever the caller left open without close-on-exec (a shell's
	// directory descriptor, say) must not reach the pod: only stdin,
	// stdout, stderr and the helper's own descriptors do.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 0, &os.SyscallError{Syscall: "close_range", Err: err}
	}
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	uuid := filepath.Base(podDir)
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return 0, err
	}
	ra, err := sdpod.RuntimeApp(pm, args.AppName)
	if err != nil {
		return 0, err
	}
	spec, err := appspec.NewAppSpec(ra, appspec.EnvOptions{Term: term})
	if err != nil {
		return 0, err
	}
	iso, err := loadIsolation(podDir, uuid)
	if errors.Is(err, fs.ErrNotExist) {
		// A pod started without the record: confine with the defaults,
		// never less.
		iso, err = &sdpod.Isolation{}, nil
	}
	if err != nil {
		return 0, err
	}
	policy, _, err := isolate.PolicyForRuntimeApp(ra, iso.Options)
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", args.AppName, err)
	}
	if err := checkPodRoot(args.PID, filepath.Join(podDir, stage1abi.Stage1RootfsRel)); err != nil {
		return 0, fmt.Errorf("enter pod: %w", err)
	}
	appRootfs := path.Join(sdpod.Stage2Dir, args.AppName, "rootfs")
	creds, err := apphelper.ReadCredsRecord(podDir, args.AppName)
	if err != nil {
		return 0, err
	}
	ec := enterConfig{
		Policy: policy, Cgroups: iso.Cgroups[args.AppName], Spec: spec, Cmd: args.Cmd, Debug: DebugFromEnv(),
		Creds: isolate.Creds{UID: creds.UID, GID: creds.GID, Groups: creds.Groups},
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the enter binary: %w", err)
	}

	runtime.LockOSThread() // never unlocked: the thread carries the namespaces
	proc := filepath.Join("/proc", strconv.Itoa(args.PID))
	root, err := os.OpenFile(filepath.Join(proc, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a /proc path of the pod's process
	if err != nil {
		return 0, fmt.Errorf("open pod root: %w", err)
	}
	defer func() { _ = root.Close() }()
	appRoot, err := inroot.Open(root, appRootfs, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return 0, fmt.Errorf("open app rootfs: %w", err)
	}
	defer func() { _ = appRoot.Close() }()
	// The mount and PID namespaces to enter: those of a running process
	// of the app, whose root is the app's rootfs, so that the command
	// sees the app's own mounts and processes, and only those. Without
	// one there is nothing to enter: each app's PID namespace lives as
	// long as the app.
	r, appPID, err := appProcessRoot(proc, appRoot, func(p string) bool { return hostPIDApp(p, args.PID, args.AppName) })
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, errdefs.FailedPrecondition("app %s has no running process to enter", args.AppName)
	}
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	err = unix.Fstat(int(r.Fd()), &st)
	_ = r.Close()
	if err != nil {
		return 0, &os.PathError{Op: "fstat", Path: "app root", Err: err}
	}
	nsProc := filepath.Join("/proc", strconv.Itoa(appPID))
	ec.RootDev, ec.RootIno = st.Dev, st.Ino
	// A pod run with --private-users: the helper cannot join the pod's
	// user namespace (setns(CLONE_NEWUSER) refuses a multithreaded
	// process, as every Go program is), so the command runs as the host
	// IDs the app's IDs map to, with no capability: never more than the
	// app has, whose capabilities hold in its own user namespace only.
	if r, err := userNSRange(nsProc); err != nil {
		return 0, err
	} else if !r.IsZero() {
		if ec.Creds, err = shiftCreds(ec.Creds, r); err != nil {
			return 0, fmt.Errorf("app %s: %w", args.AppName, err)
		}
		p := *ec.Policy
		p.Caps = &caps.Sets{}
		ec.Policy = &p
		log.DebugContext(ctx, "the pod has a user namespace: enter as the shifted user, without capabilities", "range", r.String())
	}
	mntNS, err := os.Open(filepath.Join(nsProc, "ns", "mnt")) //nolint:gosec // G304: a /proc path of the pod's process
	if err != nil {
		return 0, fmt.Errorf("open mnt namespace: %w", err)
	}
	defer func() { _ = mntNS.Close() }()
	// On a unified host the app's cgroup is its unit's, which the pod's
	// systemd made (and removes when the app ends): the helper is cloned
	// straight into it (CLONE_INTO_CGROUP), from the host's cgroup
	// namespace, which can see both ends of the move, and then takes a
	// namespace of its own rooted there, as the app has.
	var sys *syscall.SysProcAttr
	hc, err := detectHostCgroups()
	if err != nil {
		return 0, err
	}
	if hc.unified {
		cg, err := appUnitCgroup(args.PID, appPID, args.AppName)
		if err != nil {
			return 0, err
		}
		dir, err := os.OpenFile(filepath.Join(cgroup.DefaultRoot, cg), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the app's cgroup directory, as /proc/PID/cgroup names it
		if err != nil {
			return 0, fmt.Errorf("open app cgroup: %w", err)
		}
		defer func() { _ = dir.Close() }()
		sys = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
		ec.NewCgroupNS = true
		log.DebugContext(ctx, "app cgroup (v2)", "cgroup", cg)
	}
	cfgData, err := json.Marshal(ec)
	if err != nil {
		return 0, fmt.Errorf("encode enter config: %w", err)
	}
	for _, ns := range enterNamespaces {
		if ns.flag == unix.CLONE_NEWCGROUP && hc.unified {
			continue
		}
		from := proc
		if ns.flag == unix.CLONE_NEWPID || ns.flag == unix.CLONE_NEWIPC {
			// The app's IPC namespace is the pod's, or the host's in
			// a pod run with --ipc=parent (sdpod.Pod.HostIPC).
			from = nsProc
		}
		f, err := os.Open(filepath.Join(from, "ns", ns.name)) //nolint:gosec // G304: a /proc path of the pod's process
		if err != nil {
			return 0, fmt.Errorf("open %s namespace: %w", ns.name, err)
		}
		log.DebugContext(ctx, "setns", "ns", ns.name)
		err = unix.Setns(int(f.Fd()), ns.flag)
		_ = f.Close()
		if err != nil {
			return 0, fmt.Errorf("join %s namespace: %w", ns.name, &os.SyscallError{Syscall: "setns", Err: err})
		}
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create enter config pipe: %w", err)
	}
	defer func() { _ = cfgR.Close() }()
	defer func() { _ = cfgW.Close() }()
	// A terminal's Ctrl-C reaches the command directly; enter only waits.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGINT, unix.SIGQUIT, unix.SIGTSTP)
	defer signal.Stop(sigc)
	// SIGTERM (a caller giving up, such as the CRI's ExecSync at its
	// deadline, signalling enter's process group) is passed on to the
	// command, and enter stays to reap it: were enter to die first, the
	// command, a process of the app's PID namespace whose parent is
	// outside it, would be reparented to the host's init, and show in the
	// app as a zombie until that init reaps it.
	termc := make(chan os.Signal, 1)
	signal.Notify(termc, unix.SIGTERM)
	defer signal.Stop(termc)
	cmd := &exec.Cmd{
		Path: exe, Args: []string{exe, EnterHelperArg},
		Env:   []string{},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles:  []*os.File{mntNS, cfgR},
		SysProcAttr: sys,
		// No Pdeathsig here: in the app's pid namespace the child's
		// parent is outside (getppid is 0), which the Go runtime takes
		// for a dead parent. isolate.Exec arms it on the exec thread.
	}
	log.DebugContext(ctx, "start enter helper", "cmd", args.Cmd, "cgroups", iso.Cgroups[args.AppName])
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start enter helper: %w", err)
	}
	_ = cfgR.Close()
	waited := make(chan struct{})
	defer close(waited)
	go func() {
		select {
		case <-termc:
			_ = cmd.Process.Signal(unix.SIGTERM)
		case <-waited:
		}
	}()
	werrc := make(chan error, 1)
	go func() {
		_, err := cfgW.Write(cfgData)
		_ = cfgW.Close()
		werrc <- err
	}()
	err = cmd.Wait()
	werr := <-werrc
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("run enter helper: %w", err)
	}
	if werr != nil && cmd.ProcessState.ExitCode() == stage1abi.ExitRuntime {
		return 0, fmt.Errorf("send enter config: %w", werr)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return stage1abi.SignalStatusBase + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// EnterHelper is the enter helper (see Enter): it becomes the entered
// command, confined by the app's policy, and returns only on failure.
func EnterHelper(ctx context.Context, stderr *os.File) error {
	// Only enterMountFD and enterConfigFD are ours: anything else above
	// stderr is closed at the exec.
	if err := unix.CloseRange(enterMountFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	cfgFile := os.NewFile(enterConfigFD, "enter config pipe")
	var cfg enterConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read enter config: %w", err)
	}
	if len(cfg.Cmd) == 0 {
		return fmt.Errorf("enter config: no command")
	}
	log := NewLogger(stderr, cfg.Debug).With("app", cfg.Spec.Name, "mode", "enter")
	// The cgroups first, through the host's /sys/fs/cgroup: the helper is
	// still in the host's mount namespace and root.
	for _, d := range cfg.Cgroups {
		log.DebugContext(ctx, "join app cgroup", "dir", d)
		if err := apphelper.WriteCgroupProcs(d, "0"); err != nil {
			return fmt.Errorf("join app cgroup: %w", err)
		}
	}
	// setns(CLONE_NEWNS) refuses a thread that shares its filesystem
	// context (root, working directory) with others, as every thread of
	// a Go process does: this one takes a context of its own first. It
	// stays locked: it execs the command.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_FS)", Err: err}
	}
	log.DebugContext(ctx, "setns", "ns", "mnt")
	if err := unix.Setns(enterMountFD, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join mnt namespace: %w", &os.SyscallError{Syscall: "setns", Err: err})
	}
	_ = unix.Close(enterMountFD)
	if cfg.NewCgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return &os.SyscallError{Syscall: "unshare(CLONE_NEWCGROUP)", Err: err}
		}
	}
	if err := checkRoot(cfg.RootDev, cfg.RootIno); err != nil {
		return err
	}
	s := cfg.Spec
	fsys := os.DirFS("/")
	if err := appspec.CheckDir(fsys, s.WorkingDir); err != nil {
		return err
	}
	p, err := appspec.LookPath(fsys, cfg.Cmd[0], appspec.Getenv(s.Env, "PATH"), s.WorkingDir)
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "exec", "path", p, "uid", cfg.Creds.UID, "gid", cfg.Creds.GID)
	return isolate.Exec(cfg.Policy, isolate.ExecConfig{
		Path: p, Args: cfg.Cmd, Env: s.Env, Dir: s.WorkingDir,
		Creds:             cfg.Creds,
		ParentDeathSignal: syscall.SIGKILL,
	})
}

// checkRoot makes sure that the root the helper got by entering an app
// process's mount namespace is the app's rootfs (dev, ino), and changes
// to it.
func checkRoot(dev, ino uint64) error {
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return &os.PathError{Op: "stat", Path: "/", Err: err}
	}
	if st.Dev != dev || st.Ino != ino {
		return errdefs.FailedPrecondition("the app's mount namespace has another root than the app's rootfs")
	}
	return nil
}
