package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
	"github.com/nosecone/nscn/stage1-fly/inroot"
	"github.com/nosecone/nscn/stage1/nspawn"
)

// enterNamespaces are the namespaces of the pod's pid 1 that enter joins
// with setns(2). None of them needs a single-threaded caller; each
// applies to the calling thread only (for pid: to its future children),
// so enter locks its goroutine to the thread and starts the command from
// it. The mount namespace, which would need a single-threaded process, is
// not joined: the command is chrooted into the app's rootfs through
// /proc/PID/root, which resolves in the pod's mount namespace, with the
// pod's mounts.
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

// Enter implements the enter entrypoint, from the pod directory: it runs
// the command in the pod's namespaces, chrooted into the app's rootfs, in
// the app's working directory and with the app's environment (and enter's
// TERM when the app sets none), and returns its status. The command runs
// as root.
func Enter(ctx context.Context, log *slog.Logger, args fly.EnterArgs, term string) (int, error) {
	log = log.With("app", args.AppName, "pid", args.PID)
	podDir, err := unix.Getwd()
	if err != nil {
		return 0, fmt.Errorf("get pod directory: %w", err)
	}
	pod, err := nspawn.LoadPod(inStage1(podDir, nspawn.PodConfigFile))
	if err != nil {
		return 0, err
	}
	app, err := pod.AppByName(args.AppName)
	if err != nil {
		return 0, err
	}
	if err := checkPodRoot(args.PID, filepath.Join(podDir, stage1abi.Stage1RootfsRel)); err != nil {
		return 0, fmt.Errorf("enter pod: %w", err)
	}
	env := app.Spec.Env
	if term != "" && fly.Getenv(env, "TERM") == "" {
		env = append(env, "TERM="+term)
	}

	runtime.LockOSThread() // never unlocked: the thread carries the namespaces
	proc := filepath.Join("/proc", strconv.Itoa(args.PID))
	root, err := os.OpenFile(filepath.Join(proc, "root"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open pod root: %w", err)
	}
	defer root.Close()
	appRoot, err := inroot.Open(root, app.Plan.RootFS, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return 0, fmt.Errorf("open app rootfs: %w", err)
	}
	defer appRoot.Close()
	for _, ns := range enterNamespaces {
		f, err := os.Open(filepath.Join(proc, "ns", ns.name))
		if err != nil {
			return 0, fmt.Errorf("open %s namespace: %w", ns.name, err)
		}
		log.DebugContext(ctx, "setns", "ns", ns.name)
		err = unix.Setns(int(f.Fd()), ns.flag)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("join %s namespace: %w", ns.name, &os.SyscallError{Syscall: "setns", Err: err})
		}
	}
	if err := unix.Fchdir(int(appRoot.Fd())); err != nil {
		return 0, &os.PathError{Op: "fchdir", Path: app.Plan.RootFS, Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return 0, &os.PathError{Op: "chroot", Path: app.Plan.RootFS, Err: err}
	}
	fsys := os.DirFS("/")
	if err := fly.CheckDir(fsys, app.Spec.WorkingDir); err != nil {
		return 0, err
	}
	path, err := fly.LookPath(fsys, args.Cmd[0], fly.Getenv(env, "PATH"), app.Spec.WorkingDir)
	if err != nil {
		return 0, err
	}
	// A terminal's Ctrl-C reaches the command directly; enter only waits.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, unix.SIGINT, unix.SIGQUIT, unix.SIGTSTP)
	defer signal.Stop(sigc)
	cmd := &exec.Cmd{
		Path: path, Args: args.Cmd, Env: env, Dir: app.Spec.WorkingDir,
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	}
	log.DebugContext(ctx, "run", "path", path)
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("run %s: %w", path, err)
	}
	ws, ok := cmd.ProcessState.Sys().(unix.WaitStatus)
	if ok && ws.Signaled() {
		return stage1abi.SignalStatusBase + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}
