package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// EnterHelperArg is the agent's only argument that makes it the enter
// helper (EnterHelper).
const EnterHelperArg = "__nscn-enter-helper"

// Descriptors of the enter helper contract.
const (
	enterMountFD  = 3 // the mount namespace of an app process (/proc/PID/ns/mnt)
	enterConfigFD = 4 // read end of a pipe carrying one helperConfig as JSON
)

// helperConfig is what the agent hands the enter helper.
type helperConfig struct {
	Request EnterRequest `json:"request"`
	// The helper enters an app process's mount namespace, whose root
	// must be RootDev and RootIno (the app's rootfs).
	RootDev uint64 `json:"rootDev"`
	RootIno uint64 `json:"rootIno"`
}

// frame is one frame the agent read, or the end of the host's
// connection (eof).
type frame struct {
	typ     byte
	payload []byte
	eof     bool
}

// EnterServer serves enter sessions on the enter port for as long as the
// guest runs (see EnterRequest for the exchange). log gets a line per
// session.
//
// An enter runs as the nspawn flavor's does, in the guest instead of on
// the host (the guest is the pod; the agent is in the pod's namespaces):
//
//	agent                                  enter helper
//	  find a process of the app (its
//	  own PID namespace, its root the
//	  app's rootfs); none: refuse
//	  on a thread of its own, setns pid
//	  of the app's process; start
//	  /nscn/agent __nscn-enter-helper ───▶ born in the app's PID namespace
//	  in the app's unit cgroup              and unit cgroup; fd 3: the app
//	  (CLONE_INTO_CGROUP)                   process's mount namespace
//	  write helperConfig on fd 4 ────────▶ read it; unshare(CLONE_FS),
//	                                        setns(3), a cgroup namespace
//	                                        rooted at the unit's cgroup;
//	                                        check that its root is the app's
//	                                        rootfs; resolve the command
//	                                        there; isolate.Exec ─▶ the command
//	  relay stdin, stdout, stderr;
//	  send the exit status ◀────────────── (254 and one line on stderr if
//	                                        the helper failed)
func EnterServer(log io.Writer, f *os.File) error {
	defer func() { _ = f.Close() }()
	out := &lockedWriter{w: f}
	frames := make(chan frame)
	go readFrames(f, frames)
	var cur *enterSession
	for fr := range frames {
		switch {
		case fr.eof:
			// The host is gone: whatever it started ends.
			if cur != nil {
				cur.kill(unix.SIGKILL)
				cur = nil
			}
		case fr.typ == FrameRequest:
			if cur != nil {
				// A new host without the end of the old one seen
				// between them.
				cur.kill(unix.SIGKILL)
			}
			cur = startSession(log, out, fr.payload)
		case cur != nil:
			cur.input(fr)
		}
	}
	return nil
}

// readFrames reads the port's frames into c. A read of a virtio-serial
// port returns end of file while no host program is connected: that is
// passed on once per disconnection, then the port is read again after a
// pause. A frame cut short by a disconnection is dropped.
func readFrames(f *os.File, c chan<- frame) {
	connected := true
	for {
		typ, p, err := ReadFrame(f)
		if err != nil {
			if connected {
				c <- frame{eof: true}
			}
			connected = false
			time.Sleep(50 * time.Millisecond)
			continue
		}
		connected = true
		c <- frame{typ: typ, payload: p}
	}
}

// lockedWriter serializes the frames of the session's writers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// enterSession is one entered command.
type enterSession struct {
	cmd *exec.Cmd
	// stdin carries the host's stdin frames to the command's stdin
	// pipe (a nil slice: its end), written by a goroutine of its own so
	// that a command that does not read its stdin stalls nothing else
	// (the host keeps at most StdinWindow frames in flight).
	stdin chan []byte
	done  chan struct{} // closed once the command has ended
}

func (s *enterSession) kill(sig unix.Signal) {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(sig)
	}
}

func (s *enterSession) input(fr frame) {
	switch fr.typ {
	case FrameStdin, FrameStdinEOF:
		p := fr.payload
		if fr.typ == FrameStdinEOF {
			p = nil
		} else if p == nil {
			p = []byte{}
		}
		select {
		case s.stdin <- p:
		case <-s.done:
		}
	case FrameSignal:
		if len(fr.payload) == 1 && allowedSignal(unix.Signal(fr.payload[0])) {
			s.kill(unix.Signal(fr.payload[0]))
		}
	}
}

// feedStdin writes what arrives on s.stdin to w until its end or the
// command's, and acknowledges each frame on out.
func (s *enterSession) feedStdin(w io.WriteCloser, out io.Writer) {
	defer func() { _ = w.Close() }()
	for {
		select {
		case p := <-s.stdin:
			if p == nil {
				return
			}
			if _, err := w.Write(p); err != nil {
				return
			}
			_ = WriteFrame(out, FrameStdinAck, nil)
		case <-s.done:
			return
		}
	}
}

// allowedSignal: the signals a terminal sends and stop's.
func allowedSignal(s unix.Signal) bool {
	switch s {
	case unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP, unix.SIGKILL:
		return true
	}
	return false
}

// startSession starts the command of the request and the goroutine that
// reports its end.
func startSession(log io.Writer, out io.Writer, payload []byte) *enterSession {
	var req EnterRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		_ = WriteFrame(out, FrameError, []byte("decode enter request: "+err.Error()))
		return nil
	}
	_ = WriteFrame(out, FrameStarted, []byte(req.Nonce))
	s := &enterSession{stdin: make(chan []byte, StdinQueue), done: make(chan struct{})}
	var stdinW *os.File
	var (
		relays sync.WaitGroup
		pipes  []*os.File
	)
	closePipes := func() {
		for _, p := range pipes {
			_ = p.Close()
		}
	}
	var waited <-chan struct{}
	cmd, err := func() (*exec.Cmd, error) {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pipes = append(pipes, inR)
		stdinW = inW
		cmd := &exec.Cmd{Stdin: inR}
		for _, st := range []struct {
			typ byte
			dst *io.Writer
		}{{FrameStdout, &cmd.Stdout}, {FrameStderr, &cmd.Stderr}} {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			pipes = append(pipes, w)
			*st.dst = w
			relays.Add(1)
			go func(typ byte) {
				defer relays.Done()
				defer func() { _ = r.Close() }()
				_, _ = io.Copy(FrameWriter{W: out, Type: typ}, r)
			}(st.typ)
		}
		w, err := startEnter(cmd, req)
		waited = w
		return cmd, err
	}()
	closePipes()
	if err != nil {
		if stdinW != nil {
			_ = stdinW.Close()
		}
		relays.Wait()
		_, _ = fmt.Fprintf(log, "nscn-agent: enter app %s: %v\n", req.Spec.Name, err)
		_ = WriteFrame(out, FrameError, []byte(oneLine(err)))
		return nil
	}
	_, _ = fmt.Fprintf(log, "nscn-agent: enter app %s: %q\n", req.Spec.Name, req.Cmd)
	s.cmd = cmd
	go s.feedStdin(stdinW, out)
	go func() {
		<-waited
		close(s.done)
		relays.Wait()
		status := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = stage1abi.SignalStatusBase + int(ws.Signal())
		}
		_ = WriteFrame(out, FrameExit, []byte(strconv.Itoa(status)))
	}()
	return s
}

// startEnter finds a running process of the app and starts the enter
// helper in its PID namespace and unit cgroup.
func startEnter(cmd *exec.Cmd, req EnterRequest) (<-chan struct{}, error) {
	if len(req.Cmd) == 0 || req.Policy == nil {
		return nil, errdefs.InvalidArgument("enter request without a command or a policy")
	}
	app := req.Spec.Name
	if app == "" || strings.ContainsRune(app, '/') || app == "." || app == ".." {
		return nil, errdefs.InvalidArgument("enter request for app %q", app)
	}
	root, err := inroot.OpenRoot("/")
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	appRoot, err := inroot.Open(root, path.Join(sdpod.Stage2Dir, app, "rootfs"), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("open app %s's rootfs: %w", app, err)
	}
	var want unix.Stat_t
	err = unix.Fstat(int(appRoot.Fd()), &want)
	_ = appRoot.Close()
	if err != nil {
		return nil, &os.PathError{Op: "fstat", Path: "app rootfs", Err: err}
	}
	pid, err := appProcess("/proc/1", want)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.FailedPrecondition("app %s has no running process to enter", app)
	}
	if err != nil {
		return nil, err
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	cg, err := appUnitCgroup(proc, app)
	if err != nil {
		return nil, err
	}
	cgDir, err := os.OpenFile(filepath.Join(cgroup.DefaultRoot, cg), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: the app's unit cgroup, checked by appUnitCgroup
	if err != nil {
		return nil, fmt.Errorf("open app cgroup: %w", err)
	}
	defer func() { _ = cgDir.Close() }()
	mntNS, err := os.Open(filepath.Join(proc, "ns", "mnt")) //nolint:gosec // G304: a /proc path
	if err != nil {
		return nil, fmt.Errorf("open mnt namespace: %w", err)
	}
	defer func() { _ = mntNS.Close() }()
	pidNS, err := os.Open(filepath.Join(proc, "ns", "pid")) //nolint:gosec // G304: a /proc path
	if err != nil {
		return nil, fmt.Errorf("open pid namespace: %w", err)
	}
	defer func() { _ = pidNS.Close() }()
	data, err := json.Marshal(helperConfig{Request: req, RootDev: want.Dev, RootIno: want.Ino})
	if err != nil {
		return nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer func() { _ = cfgW.Close() }()
	cmd.Path, cmd.Args, cmd.Env = AgentPath, []string{AgentPath, EnterHelperArg}, []string{}
	cmd.ExtraFiles = []*os.File{mntNS, cfgR}
	// No Pdeathsig: in the app's PID namespace the helper's parent is
	// outside (getppid is 0), which the Go runtime takes for a dead
	// parent. isolate.Exec arms it on the exec thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgDir.Fd())}
	waited, err := startOnThread(cmd, func() error {
		if err := unix.Setns(int(pidNS.Fd()), unix.CLONE_NEWPID); err != nil {
			return fmt.Errorf("join pid namespace: %w", &os.SyscallError{Syscall: "setns", Err: err})
		}
		return nil
	})
	_ = cfgR.Close()
	if err != nil {
		return nil, fmt.Errorf("start enter helper: %w", err)
	}
	// The pipe holds the config (far below its 64 KiB); a helper that
	// died early makes this fail, and its status says why.
	_, _ = cfgW.Write(data)
	return waited, nil
}

// appProcess returns the pid of a process of the app: one whose root is
// the app's rootfs (want: same device and inode) and whose PID namespace
// is a child of that of podProc (/proc/1: each app has one of its own).
// The app helper's shim, in the pod's PID namespace and root, or a
// process not yet pivoted into the app, does not match.
func appProcess(podProc string, want unix.Stat_t) (int, error) {
	var podNS unix.Stat_t
	if err := unix.Stat(filepath.Join(podProc, "ns", "pid"), &podNS); err != nil {
		return 0, &os.PathError{Op: "stat", Path: filepath.Join(podProc, "ns", "pid"), Err: err}
	}
	procs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		var got unix.Stat_t
		if unix.Stat(filepath.Join(p, "root"), &got) != nil || got.Dev != want.Dev || got.Ino != want.Ino || !pidNSChildOf(p, podNS) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(p))
		if err == nil {
			return pid, nil
		}
	}
	return 0, errdefs.NotFound("no process of the app is running")
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
		return false
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Dev == parent.Dev && st.Ino == parent.Ino
}

// appUnitCgroup returns the cgroup v2 path of the process proc, which
// must be the app's unit's (units.ServiceName): the guest has the unified
// hierarchy only, and the app cannot move itself (its /sys/fs/cgroup is
// read-only), but enter does not take the pod's word for it.
func appUnitCgroup(proc, app string) (string, error) {
	f, err := os.Open(filepath.Join(proc, "cgroup")) //nolint:gosec // G304: a /proc path
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	ms, err := cgroup.ParseProcCgroup(f)
	if err != nil {
		return "", err
	}
	cg, ok := cgroup.UnifiedPath(ms)
	if !ok {
		return "", errdefs.NotFound("app %s's process has no cgroup v2 membership", app)
	}
	return checkUnitCgroup(cg, app)
}

// checkUnitCgroup returns cg if it is a clean absolute path ending in
// app's unit.
func checkUnitCgroup(cg, app string) (string, error) {
	if !path.IsAbs(cg) || path.Clean(cg) != cg || path.Base(cg) != units.ServiceName(app) {
		return "", errdefs.FailedPrecondition("app %s runs in cgroup %s, not in its unit's", app, cg)
	}
	return cg, nil
}

// EnterHelper is the enter helper (see EnterServer): it becomes the
// entered command, confined by the app's policy, and returns only on
// failure.
func EnterHelper() error {
	// Only enterMountFD and enterConfigFD are ours: anything else above
	// stderr is closed at the exec.
	if err := unix.CloseRange(enterMountFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return &os.SyscallError{Syscall: "close_range", Err: err}
	}
	cfgFile := os.NewFile(enterConfigFD, "enter config pipe")
	var cfg helperConfig
	err := json.NewDecoder(cfgFile).Decode(&cfg)
	_ = cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read enter config: %w", err)
	}
	req := cfg.Request
	if len(req.Cmd) == 0 || req.Policy == nil {
		return fmt.Errorf("enter config: no command or policy")
	}
	// setns(CLONE_NEWNS) refuses a thread that shares its filesystem
	// context with others, as every thread of a Go process does: this
	// one takes a context of its own first. It stays locked: it execs
	// the command.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_FS)", Err: err}
	}
	if err := unix.Setns(enterMountFD, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("join mnt namespace: %w", &os.SyscallError{Syscall: "setns", Err: err})
	}
	_ = unix.Close(enterMountFD)
	// The helper was cloned into the app's unit cgroup: a namespace
	// rooted there, as the app has.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return &os.SyscallError{Syscall: "unshare(CLONE_NEWCGROUP)", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return &os.PathError{Op: "stat", Path: "/", Err: err}
	}
	if st.Dev != cfg.RootDev || st.Ino != cfg.RootIno {
		return errdefs.FailedPrecondition("the app's mount namespace has another root than the app's rootfs")
	}
	s := req.Spec
	fsys := os.DirFS("/")
	if err := appspec.CheckDir(fsys, s.WorkingDir); err != nil {
		return err
	}
	p, err := appspec.LookPath(fsys, req.Cmd[0], appspec.Getenv(s.Env, "PATH"), s.WorkingDir)
	if err != nil {
		return err
	}
	return isolate.Exec(req.Policy, isolate.ExecConfig{
		Path: p, Args: req.Cmd, Env: s.Env, Dir: s.WorkingDir,
		Creds:             req.Creds,
		ParentDeathSignal: syscall.SIGKILL,
	})
}

// oneLine formats err on a single line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// startOnThread starts cmd from a thread of its own (ownthread.Go), on
// which join runs first (the enter helper's parent joins the app's PID
// namespace there, for its children), and keeps that thread until the
// command has ended: the returned channel is closed once cmd.Wait has
// returned (cmd.ProcessState says how it ended).
//
// The thread must outlive the command. A parent-death signal follows the
// thread that forked the process, not its process (prctl(2)), and the
// enter helper arms one (isolate.Exec) that the command inherits: a
// thread that ended once the command had started, as the goroutine of a
// locked thread that returns ends it, killed the command (SIGKILL, app
// exec's status 137) whenever the helper armed the signal first, which a
// loaded one-CPU guest made happen now and then.
func startOnThread(cmd *exec.Cmd, join func() error) (<-chan struct{}, error) {
	started := make(chan error, 1)
	waited := ownthread.Go(func() {
		if err := join(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	})
	if err := <-started; err != nil {
		return nil, err
	}
	return waited, nil
}
