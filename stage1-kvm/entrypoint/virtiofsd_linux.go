package entrypoint

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/hypervisor"
)

// VirtiofsdMode is argv[1] of the run entrypoint re-executed as
// virtiofsd's launcher (VirtiofsdChild).
const VirtiofsdMode = "__nscn-kvm-virtiofsd"

// launch is the launcher's one argument, as JSON.
type launch struct {
	Root  string       `json:"root"` // the pod's stage1 rootfs
	Binds []sdpod.Bind `json:"binds"`
	Argv  []string     `json:"argv"` // virtiofsd's
}

// VirtiofsdChild runs the launcher when argv asks for it, and returns
// false otherwise; main calls it first. The launcher starts in a mount
// namespace of its own (exec.Cmd Unshareflags, with / made private), binds
// the pod's host paths (volumes, resolv.conf, hosts) into the stage1
// rootfs there, where only virtiofsd sees them, and execs virtiofsd. The
// host's mount table never holds them, so nothing is left to unmount when
// the pod ends, and the guest reaches no host path but these.
func VirtiofsdChild(argv []string) bool {
	if len(argv) != 3 || argv[1] != VirtiofsdMode {
		return false
	}
	err := runLauncher(argv[2])
	fmt.Fprintln(os.Stderr, "stage1-kvm: virtiofsd launcher:", err)
	os.Exit(stage1abi.ExitRuntime) //nolint:forbidigo // the launcher's end: it only returns on failure
	return true
}

func runLauncher(spec string) error {
	var l launch
	if err := json.Unmarshal([]byte(spec), &l); err != nil {
		return err
	}
	for _, b := range l.Binds {
		if err := bindInto(l.Root, b); err != nil {
			return err
		}
	}
	if err := privatePIDDir(); err != nil {
		return err
	}
	return unix.Exec(l.Argv[0], l.Argv, os.Environ())
}

// virtiofsdPIDDir is where virtiofsd locks a pid file named after its
// socket path.
const virtiofsdPIDDir = "/run/virtiofsd"

// privatePIDDir gives this mount namespace a tmpfs of its own at
// virtiofsdPIDDir: every pod's socket path is the same relative
// RootSocket (virtiofsd runs in the pod directory, where the path stays
// short enough for a socket), so on the host's /run two pods' virtiofsds
// would lock the same pid file, and the second would fail.
func privatePIDDir() error {
	if err := os.MkdirAll(virtiofsdPIDDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", virtiofsdPIDDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mount a private %s: %w", virtiofsdPIDDir, err)
	}
	return nil
}

// bindInto binds b.Source at b.Target in root.
func bindInto(root string, b sdpod.Bind) error {
	src := b.Source
	if b.NoSymlinks {
		f, err := inroot.OpenNoSymlinks(b.Source, unix.O_PATH)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		src = "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	target := filepath.Join(root, b.Target)
	if st.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644); err == nil { //nolint:gosec // G304: a mount point in the pod's root
				err = f.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("make mount point %s: %w", target, err)
	}
	flags := uintptr(unix.MS_BIND)
	if b.Recursive {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(src, target, "", flags, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", b.Source, target, err)
	}
	if b.ReadOnly {
		if err := unix.Mount("", target, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", target, err)
		}
	}
	return nil
}

type virtiofsd struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startVirtiofsd starts virtiofsd (through the launcher) on the pod's
// stage1 rootfs, on a vhost-user socket run makes and listens on itself,
// so that qemu can start at once: its connection waits in the socket's
// backlog until virtiofsd takes it. Waiting for virtiofsd to make the
// socket instead took 12 to 16 ms of every pod's start (the launcher's
// and virtiofsd's own starts, and a 10 ms poll), which qemu's start now
// overlaps. Should virtiofsd end before it takes the connection, qemu
// sees the socket closed (run keeps no copy of it) and fails.
func startVirtiofsd(ctx context.Context, log *slog.Logger, podDir string, vm vmConfig) (*virtiofsd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	sock, err := listenUnix(podDir, RootSocket)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sock.Close() }()
	root := filepath.Join(podDir, stage1abi.Stage1RootfsRel)
	spec, err := json.Marshal(launch{
		Root: root, Binds: vm.binds,
		// ExtraFiles[0] is the child's descriptor 3.
		Argv: hypervisor.VirtiofsdArgv(vm.img.Virtiofsd, 3, root),
	})
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path: self, Args: []string{self, VirtiofsdMode, string(spec)}, Dir: podDir,
		ExtraFiles: []*os.File{sock},
		SysProcAttr: &syscall.SysProcAttr{
			Unshareflags: unix.CLONE_NEWNS,
			Pdeathsig:    syscall.SIGKILL,
			Setpgid:      true,
		},
	}
	vlog, err := os.OpenFile(filepath.Join(podDir, StateDir, "virtiofsd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) //nolint:gosec // G304: a file of the pod directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = vlog.Close() }()
	cmd.Stdout, cmd.Stderr = vlog, vlog
	if vm.debug {
		cmd.Stderr = os.Stderr
	}
	log.DebugContext(ctx, "start virtiofsd", "argv", cmd.Args)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start virtiofsd: %w", err)
	}
	v := &virtiofsd{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(v.done) }()
	if err := atomicfile.Write(filepath.Join(podDir, StateDir), filepath.Base(VirtiofsdPIDFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

// listenUnix makes and listens on the unix socket rel (relative to
// podDir), bound through a descriptor of its directory so that a long
// pod directory never exceeds a socket path's 108 bytes. It returns the
// listening socket as a file to hand to a child.
func listenUnix(podDir, rel string) (*os.File, error) {
	dir, err := os.OpenFile(filepath.Join(podDir, filepath.Dir(rel)), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a directory of the pod directory
	if err != nil {
		return nil, err
	}
	defer func() { _ = dir.Close() }()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vhost-user socket: %w", err)
	}
	name := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(rel)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", rel, err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("listen on %s: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// stop waits a moment for virtiofsd, which exits when qemu closes its
// socket, then kills it.
func (v *virtiofsd) stop() {
	select {
	case <-v.done:
		return
	case <-time.After(2 * time.Second):
	}
	_ = unix.Kill(-v.cmd.Process.Pid, unix.SIGKILL)
	<-v.done
}
