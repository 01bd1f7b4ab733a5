package entrypoint

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-fly/fly"
)

// EnterConfig is the input of Enter.
type EnterConfig struct {
	Args abiargs.EnterArgs
	Log  *slog.Logger
	// Term is enter's TERM, passed on unless the app sets its own.
	Term string
}

// Enter implements the enter entrypoint, from the pod directory: it
// replaces itself with the command, chrooted into the root of the pod
// process (/proc/PID/root, which resolves to the app's rootfs in the pod's
// mount namespace, mounts included), in the app's working directory and
// with the app's environment. The command runs as enter's caller (root):
// fly puts no user-independent restriction on the app (no capability
// bounding, seccomp or no-new-privileges), so none is applied here either.
//
// Enter returns only on failure; the command's exit status is then the
// process's own.
func Enter(ctx context.Context, cfg EnterConfig) error {
	a := cfg.Args
	log := cfg.Log.With("app", a.AppName, "pid", a.PID)
	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("get pod directory: %w", err)
	}
	pm, err := appspec.LoadPod(filepath.Join(podDir, stage1abi.PodManifestFile))
	if err != nil {
		return err
	}
	ra, err := fly.AppByName(pm, a.AppName)
	if err != nil {
		return err
	}
	spec, err := appspec.NewAppSpec(ra, appspec.EnvOptions{Term: cfg.Term})
	if err != nil {
		return err
	}
	root, err := openPodRoot(a.PID, filepath.Join(podDir, stage1abi.AppRootfs(ra.Name.String())))
	if err != nil {
		return fmt.Errorf("enter pod: %w", err)
	}
	defer func() { _ = root.Close() }()
	fsys := rootFS{root: root}
	if err := appspec.CheckDir(fsys, spec.WorkingDir); err != nil {
		return err
	}
	path, err := appspec.LookPath(fsys, a.Cmd[0], appspec.Getenv(spec.Env, "PATH"), spec.WorkingDir)
	if err != nil {
		return err
	}
	if err := cloexecInherited(); err != nil {
		return err
	}
	log.DebugContext(ctx, "enter", "path", path, "dir", spec.WorkingDir)
	if err := unix.Fchdir(int(root.Fd())); err != nil {
		return &os.PathError{Op: "fchdir", Path: root.Name(), Err: err}
	}
	if err := unix.Chroot("."); err != nil {
		return &os.PathError{Op: "chroot", Path: root.Name(), Err: err}
	}
	if err := unix.Chdir(spec.WorkingDir); err != nil {
		return &os.PathError{Op: "chdir", Path: spec.WorkingDir, Err: err}
	}
	err = unix.Exec(path, a.Cmd, spec.Env)
	return &os.PathError{Op: "exec", Path: path, Err: err}
}
