package entrypoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/stage1/apphelper"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/hostpid"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// spawner is run's service for a pod run with --pid=parent
// (sdpod.Pod.HostPID): it starts each app's process in run's PID
// namespace, the host's, on the request of the app's helper, which no
// process of the pod can do itself (package hostpid has the protocol).
//
// It is a root process on the host, outside every namespace of the pod,
// that starts processes on a pod's request, so it trusts nothing the
// request says but the app's name, and checks the caller first:
//
//   - who: the caller is the peer of the connection, taken as a pidfd
//     (SO_PEERPIDFD, so that a pid cannot be recycled under the checks);
//     its PID namespace is the pod's (the helper is a process of the
//     pod's systemd's namespace: not an app, not a process of the host
//     that found the socket), its root the pod's stage1 rootfs, and its
//     cgroup (cgroup v2 membership, which the host's kernel reports) the
//     unit of the app it names, below the pod's cgroup; the pidfd is
//     checked alive after the reads;
//   - what: the app's entry (process spec, mounts, policy) comes from
//     run's own layout for a run-time app and, for an app added to a
//     mutable pod, is computed anew from the pod manifest in the pod
//     directory, as app/add computed it, never from the pod's config
//     file, which the pod can write;
//   - with what: the three descriptors the request carries become the
//     app's stdio and nothing else; a directory, an O_PATH descriptor or
//     anything but a pipe, socket, character device or regular file is
//     refused (a directory of the pod's root would be a way out of the
//     app's root);
//   - once: one running process per app.
//
// The process it starts is the stage1 image's app helper in
// apphelper.ModeHostExec, by fork and exec (exec.Cmd: no Go code runs
// between them), with the app's entry on a pipe and the caller's pidfd,
// whose namespaces it joins; it is put in the caller's cgroups before
// it reads its config, and confines itself exactly as the helper's own
// ns-exec process does.
type spawner struct {
	log    *slog.Logger
	podDir string
	// pod is run's layout of the pod: the run-time apps' entries,
	// HostIPC and CgroupUnified.
	pod sdpod.Pod
	// lc is run's layout config, from which an added app's entry is
	// computed (mutable pods).
	lc sdpod.LayoutConfig
	// helper is the app helper of the stage1 image, on the host.
	helper string
	// podPID returns the pid of the pod's systemd (podPID).
	podPID func() (int, error)

	ln     *net.UnixListener
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]bool
}

// spawnerConfig is what startSpawner needs.
type spawnerConfig struct {
	PodDir string
	Pod    sdpod.Pod
	Layout sdpod.LayoutConfig
	// Helper is the host path of the app helper to start
	// (apphelper.ModeHostExec).
	Helper string
	// PodPID returns the pid of the pod's systemd.
	PodPID func() (int, error)
}

// startSpawner binds the spawner's socket at sdpod.HostPIDSocket in the
// pod's root (a file of its own: never one that was there; mode 0600)
// and serves it until stop. stop closes the socket, kills every app it
// started and waits for them.
func startSpawner(ctx context.Context, log *slog.Logger, cfg spawnerConfig) (stop func(), err error) {
	if err := probePeerPidfd(); err != nil {
		return nil, errdefs.With(errdefs.ErrNotImplemented, fmt.Errorf("--%s=%s needs Linux 6.13 or later (SO_PEERPIDFD, PIDFD_GET_INFO): %w", stage1abi.FlagPID, stage1abi.PIDParent, err))
	}
	path := inStage1(cfg.PodDir, sdpod.HostPIDSocket)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the host PID spawner's directory: %w", err)
	}
	// Bound through a descriptor of its directory: the pod directory's
	// path may be longer than a socket address (108 bytes). bind(2)
	// refuses an existing file, a symlink included.
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the host PID spawner's directory: %w", err)
	}
	defer func() { _ = dir.Close() }()
	base := filepath.Base(path)
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), base)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("listen for the host PID spawner at %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := unix.Fchmodat(int(dir.Fd()), base, 0o600, 0); err != nil {
		_ = ln.Close()
		_ = os.Remove(path)
		return nil, &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &spawner{
		log: log.With("spawner", "host-pid"), podDir: cfg.PodDir, pod: cfg.Pod, lc: cfg.Layout,
		helper: cfg.Helper, podPID: cfg.PodPID, ln: ln, path: path,
		ctx: sctx, cancel: cancel, running: map[string]bool{},
	}
	s.wg.Add(1)
	go s.serve()
	return s.stop, nil
}

func (s *spawner) stop() {
	_ = s.ln.Close()
	_ = os.Remove(s.path)
	s.cancel()
	s.wg.Wait()
}

func (s *spawner) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.WarnContext(s.ctx, "accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { _ = c.Close() }()
			s.handle(c)
		}()
	}
}

// handle serves one connection: one app start.
func (s *spawner) handle(c *net.UnixConn) {
	ctx := s.ctx
	refuse := func(err error) {
		s.log.WarnContext(ctx, "refuse a request", "err", err)
		_ = hostpid.Send(c, hostpid.Frame{Kind: hostpid.KindError, Msg: strings.Join(strings.Fields(err.Error()), " ")})
	}
	fd, pid, err := peerPidfd(c)
	if err != nil {
		refuse(err)
		return
	}
	pidf := os.NewFile(uintptr(fd), "caller pidfd")
	defer func() { _ = pidf.Close() }()
	pidfd := int(pidf.Fd())
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, stdio, err := hostpid.ReceiveRequest(c)
	if err != nil {
		refuse(err)
		return
	}
	defer func() {
		for _, f := range stdio {
			_ = f.Close()
		}
	}()
	_ = c.SetReadDeadline(time.Time{})
	log := s.log.With("app", f.App, "caller", pid)
	if err := s.checkCaller(pidfd, pid, f.App); err != nil {
		refuse(fmt.Errorf("app %s: %w", f.App, err))
		return
	}
	if err := checkStdio(stdio); err != nil {
		refuse(fmt.Errorf("app %s: %w", f.App, err))
		return
	}
	app, err := s.appEntry(f.App)
	if err != nil {
		refuse(fmt.Errorf("app %s: %w", f.App, err))
		return
	}
	if !s.reserve(f.App) {
		refuse(errdefs.AlreadyExists("app %s runs in the host's PID namespace already", f.App))
		return
	}
	defer s.release(f.App)
	cmd, err := s.start(ctx, log, app, pid, pidf, stdio)
	if err != nil {
		refuse(err)
		return
	}
	// The app has its own copies: the spawner's would keep the app's
	// output pipes open after the app's end, and the helper, which
	// copies that output to the journal, waits for its end.
	for _, f := range stdio {
		_ = f.Close()
	}
	stdio = nil
	log.DebugContext(ctx, "app started in the host's PID namespace", "pid", cmd.Process.Pid)
	if err := hostpid.Send(c, hostpid.Frame{Kind: hostpid.KindStarted, PID: cmd.Process.Pid}); err != nil {
		log.WarnContext(ctx, "tell the helper", "err", err)
	}
	waited := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		// The helper's signals, until it closes the connection: then
		// the app is killed (the helper died, or gave up).
		for {
			fr, err := hostpid.Receive(c)
			if err != nil {
				select {
				case <-waited:
				default:
					log.DebugContext(ctx, "the helper's connection closed: kill the app", "err", err)
					_ = cmd.Process.Kill()
				}
				return
			}
			if fr.Kind == hostpid.KindSignal {
				_ = cmd.Process.Signal(syscall.Signal(fr.Signal))
			}
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-waited:
		}
	}()
	err = cmd.Wait()
	close(waited)
	exit := hostpid.Frame{Kind: hostpid.KindExit}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			exit.Signal = int(ws.Signal())
		} else {
			exit.Code = ws.ExitStatus()
		}
	}
	log.DebugContext(ctx, "app ended", "code", exit.Code, "signal", exit.Signal, "err", err)
	if err := hostpid.Send(c, exit); err != nil {
		log.DebugContext(ctx, "tell the helper the app's end", "err", err)
	}
	// The helper closes once it has the exit: until then, its signals
	// (systemd's SIGCONT after a SIGTERM) are still read, since a close
	// with unread packets would reset the connection before the helper
	// read the exit.
	select {
	case <-readerDone:
	case <-time.After(10 * time.Second):
	}
}

func (s *spawner) reserve(app string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[app] {
		return false
	}
	s.running[app] = true
	return true
}

func (s *spawner) release(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, app)
}

// probePeerPidfd checks, on a socket pair of its own, that the kernel
// gives a peer's pidfd (SO_PEERPIDFD, Linux 6.5) and its pid
// (PIDFD_GET_INFO, Linux 6.13), before the pod starts rather than at its
// first app.
func probePeerPidfd() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return &os.SyscallError{Syscall: "socketpair", Err: err}
	}
	defer func() { _ = unix.Close(fds[0]); _ = unix.Close(fds[1]) }()
	pidfd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return &os.SyscallError{Syscall: "getsockopt(SO_PEERPIDFD)", Err: err}
	}
	defer func() { _ = unix.Close(pidfd) }()
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID}
	if err := unix.IoctlPidfdInfo(pidfd, &info); err != nil {
		return &os.SyscallError{Syscall: "ioctl(PIDFD_GET_INFO)", Err: err}
	}
	if int(info.Pid) != os.Getpid() {
		return fmt.Errorf("PIDFD_GET_INFO says pid %d, not this process's %d", info.Pid, os.Getpid())
	}
	return nil
}

// peerPidfd returns a pidfd of the peer of c (SO_PEERPIDFD, Linux 6.5)
// and its pid in run's PID namespace (PIDFD_GET_INFO, Linux 6.13).
func peerPidfd(c *net.UnixConn) (int, int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, 0, err
	}
	pidfd := -1
	var serr error
	if err := rc.Control(func(fd uintptr) {
		pidfd, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	}); err != nil {
		return -1, 0, err
	}
	if serr != nil {
		return -1, 0, &os.SyscallError{Syscall: "getsockopt(SO_PEERPIDFD)", Err: serr}
	}
	unix.CloseOnExec(pidfd)
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID}
	if err := unix.IoctlPidfdInfo(pidfd, &info); err != nil {
		_ = unix.Close(pidfd)
		return -1, 0, &os.SyscallError{Syscall: "ioctl(PIDFD_GET_INFO)", Err: err}
	}
	return pidfd, int(info.Pid), nil
}

// checkCaller checks that the process of pidfd (pid) is the helper of
// app: in the PID namespace of the pod's systemd, with the pod's stage1
// rootfs as its root, in the cgroup of app's unit below the pod's; and
// that it is still the same process once all is read.
func (s *spawner) checkCaller(pidfd, pid int, app string) error {
	podPID, err := s.podPID()
	if err != nil {
		return err
	}
	same, err := sameNS(pid, podPID, "pid")
	if err != nil {
		return err
	}
	if !same {
		return errdefs.PermissionDenied("process %d is not in the pod's PID namespace: not an app helper", pid)
	}
	if err := checkPodRoot(pid, filepath.Join(s.podDir, stage1abi.Stage1RootfsRel)); err != nil {
		return errdefs.With(errdefs.ErrPermissionDenied, err)
	}
	if _, err := appUnitCgroup(podPID, pid, app); err != nil {
		return errdefs.With(errdefs.ErrPermissionDenied, err)
	}
	// The pidfd still names a running process: the pid read above was
	// its own, not a recycled one.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		return errdefs.With(errdefs.ErrPermissionDenied, &os.SyscallError{Syscall: "pidfd_send_signal", Err: err})
	}
	return nil
}

// sameNS reports whether processes a and b are in the same namespace
// of the kind name (/proc/PID/ns/NAME).
func sameNS(a, b int, name string) (bool, error) {
	var sa, sb unix.Stat_t
	pa := filepath.Join("/proc", strconv.Itoa(a), "ns", name)
	if err := unix.Stat(pa, &sa); err != nil {
		return false, &os.PathError{Op: "stat", Path: pa, Err: err}
	}
	pb := filepath.Join("/proc", strconv.Itoa(b), "ns", name)
	if err := unix.Stat(pb, &sb); err != nil {
		return false, &os.PathError{Op: "stat", Path: pb, Err: err}
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// checkStdio refuses descriptors that are not fit to be an app's stdio.
func checkStdio(files []*os.File) error {
	for i, f := range files {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			return &os.SyscallError{Syscall: "fcntl(F_GETFL)", Err: err}
		}
		if fl&unix.O_PATH != 0 {
			return errdefs.PermissionDenied("descriptor %d of the request is an O_PATH handle, not stdio", i)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return &os.SyscallError{Syscall: "fstat", Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFREG:
		default:
			return errdefs.PermissionDenied("descriptor %d of the request is neither a pipe, a socket, a character device nor a regular file", i)
		}
	}
	return nil
}

// appEntry returns app's entry: run's own for a run-time app; for an
// app added to a mutable pod, computed from the pod manifest as app/add
// computed it.
func (s *spawner) appEntry(name string) (*sdpod.App, error) {
	for i := range s.pod.Apps {
		if s.pod.Apps[i].Spec.Name == name {
			a := s.pod.Apps[i]
			return &a, nil
		}
	}
	if !s.lc.Args.Mutable {
		return nil, errdefs.NotFound("the pod has no app %q", name)
	}
	pm, err := appspec.LoadPod(filepath.Join(s.podDir, stage1abi.PodManifestFile))
	if err != nil {
		return nil, err
	}
	ra, err := sdpod.RuntimeApp(pm, name)
	if err != nil {
		return nil, err
	}
	one := *pm
	one.Apps = []schema.RuntimeApp{*ra}
	lc := s.lc
	lc.Manifest, lc.BindDir = &one, sdpod.AppBindDir(name)
	layout, err := sdpod.NewLayout(lc)
	if err != nil {
		return nil, err
	}
	return &layout.Pod.Apps[0], nil
}

// start starts the app's process (apphelper.ModeHostExec) and returns it
// once it has exec'd the app.
func (s *spawner) start(ctx context.Context, log *slog.Logger, app *sdpod.App, caller int, pidfd *os.File, stdio []*os.File) (*exec.Cmd, error) {
	name := app.Spec.Name
	cfg, err := json.Marshal(apphelper.HostExecConfig{App: *app, HostIPC: s.pod.HostIPC, Unified: s.pod.CgroupUnified})
	if err != nil {
		return nil, fmt.Errorf("app %s: encode its config: %w", name, err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("app %s: config pipe: %w", name, err)
	}
	defer func() { _ = cfgW.Close() }()
	syncR, syncW, err := os.Pipe()
	if err != nil {
		_ = cfgR.Close()
		return nil, fmt.Errorf("app %s: sync pipe: %w", name, err)
	}
	defer func() { _ = syncR.Close() }()
	cmd := &exec.Cmd{
		Path:       s.helper,
		Args:       []string{sdpod.AppHelper, apphelper.ModeHostExec, name},
		Env:        []string{},
		Dir:        "/",
		Stdin:      stdio[0],
		Stdout:     stdio[1],
		Stderr:     stdio[2],
		ExtraFiles: []*os.File{cfgR, pidfd, syncW},
		SysProcAttr: &syscall.SysProcAttr{
			// A group of its own, away from run's terminal; killed if
			// run dies.
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	err = cmd.Start()
	_ = cfgR.Close()
	_ = syncW.Close()
	if err != nil {
		return nil, fmt.Errorf("app %s: start it in the host's PID namespace: %w", name, err)
	}
	fail := func(err error) (*exec.Cmd, error) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	// The app's cgroups (the caller's, which joined them) before the
	// process reads its config, so before it runs anything of the app's.
	if err := cgroup.Join(cmd.Process.Pid, caller); err != nil {
		return fail(fmt.Errorf("app %s: %w", name, err))
	}
	if err := joinUnified(cmd.Process.Pid, caller); err != nil {
		return fail(fmt.Errorf("app %s: %w", name, err))
	}
	_, werr := cfgW.Write(cfg)
	_ = cfgW.Close()
	line, rerr := io.ReadAll(io.LimitReader(syncR, 64<<10))
	switch {
	case len(line) > 0:
		return fail(errors.New(strings.TrimSpace(string(line))))
	case rerr != nil:
		return fail(fmt.Errorf("app %s: read its sync pipe: %w", name, rerr))
	case werr != nil:
		return fail(fmt.Errorf("app %s: send its config: %w", name, werr))
	}
	log.DebugContext(ctx, "app process exec'd", "pid", cmd.Process.Pid)
	return cmd, nil
}

// joinUnified moves pid into the cgroup v2 (unified) cgroup of process
// of, on a hybrid host too, where systemd tracks its units there: the
// pod's systemd then counts the app to its unit. cgroup.Join covers the
// v1 hierarchies it manages, or the unified one on a v2 host.
func joinUnified(pid, of int) error {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(of), "cgroup"))
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	ms, err := cgroup.ParseProcCgroup(f)
	if err != nil {
		return err
	}
	p, ok := cgroup.UnifiedPath(ms)
	if !ok {
		return nil
	}
	for _, root := range []string{filepath.Join(cgroup.DefaultRoot, "unified"), cgroup.DefaultRoot} {
		dir := filepath.Join(root, p)
		if filepath.Clean(dir) != dir || !strings.HasPrefix(dir, root+"/") {
			return errdefs.InvalidArgument("cgroup %q of process %d", p, of)
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		return apphelper.WriteCgroupProcs(dir, strconv.Itoa(pid))
	}
	return nil
}
