package stage1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/store/tree"
)

// Pod is the stage1 of a pod as stage0 executes it. Its entrypoints are
// those of the pod's copy of the stage1 manifest (stage1/manifest in the
// pod directory, which prepare wrote outside the stage1 rootfs, out of the
// pod's reach), and they are executed from Tree, the stage1's rendered tree
// in the store, never from the pod's copy of the stage1 (stage1/rootfs),
// which the pod's processes can write: an app that gets out of its root
// into the stage1's must not get a program of its choice run as root on
// the host by the next nscn enter, stop, rm or gc.
type Pod struct {
	// Dir is the pod directory, the working directory of every
	// entrypoint.
	Dir string
	// Tree is the stage1's rendered tree, as the store returned it: its
	// completion marker and metadata were checked, so it is complete.
	Tree *tree.Tree
	Entrypoints
}

// Path returns the host path an entrypoint is executed from: the
// entrypoint (a path inside the stage1 rootfs, as the manifest's
// annotation gives it) resolved in the rootfs of the pod's stage1 tree,
// after checking that the file is one the store rendered and no one but
// root (or the user nscn runs as) could have changed. See
// resolveEntrypoint for what is checked. An empty entrypoint (the
// annotation is absent) is NotImplemented; one that fails a check is
// FailedPrecondition.
func (p *Pod) Path(entrypoint string) (string, error) {
	if entrypoint == "" {
		return "", errdefs.Newf(errdefs.ErrNotImplemented, "the pod's stage1 has no such entrypoint")
	}
	path, err := resolveEntrypoint(p.Tree.Path, p.Tree.Rootfs, entrypoint)
	if err != nil {
		return "", fmt.Errorf("stage1 entrypoint %s in tree %s: %w", entrypoint, p.Tree.Key, err)
	}
	return path, nil
}

// argv0 is the entrypoint's argv[0]: the annotation's value, cleaned, in
// the rootfs of the stage1's tree, as written. A symlink keeps its own
// name there, so that a multicall binary still learns from argv[0] which
// entrypoint it is; what is executed is the file Path resolved it to.
func (p *Pod) argv0(entrypoint string) string {
	return filepath.Join(p.Tree.Rootfs, filepath.Clean("/"+entrypoint))
}

// ExecRun replaces the calling process with the stage1 run entrypoint, in
// the pod directory, with the pod lock's fd (already made inheritable by the
// caller) named in RKT_LOCK_FD. It returns only on failure.
func (p *Pod) ExecRun(args []string, lockFd int, env []string) error {
	path, err := p.Path(p.Run)
	if err != nil {
		return err
	}
	if err := os.Chdir(p.Dir); err != nil {
		return fmt.Errorf("enter pod directory: %w", err)
	}
	// Drop an inherited RKT_LOCK_FD: getenv returns the first match, and a
	// stale one would name the wrong descriptor.
	clean := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, stage1abi.EnvLockFD+"=") {
			clean = append(clean, kv)
		}
	}
	env = append(clean, stage1abi.EnvLockFD+"="+strconv.Itoa(lockFd))
	argv := append([]string{p.argv0(p.Run)}, args...)
	if err := syscall.Exec(path, argv, env); err != nil { //nolint:gosec // G204: the stage1 entrypoint from its image manifest, resolved and checked in the store's tree, argv as the ABI says
		return fmt.Errorf("exec stage1 run entrypoint %s: %w", path, err)
	}
	return nil
}

// Stdio are the streams an entrypoint run as a child gets.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Invoke runs an entrypoint (enter, gc, stop) of the pod's stage1 as a
// child in the pod directory and returns its exit status. A status is not
// an error; failing to find, check or start it is.
func (p *Pod) Invoke(ctx context.Context, entrypoint string, args []string, stdio Stdio, env []string) (int, error) {
	path, err := p.Path(entrypoint)
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, path, args...) //nolint:gosec // G204: the stage1 entrypoint from its image manifest, resolved and checked in the store's tree, argv as the ABI says
	cmd.Args[0] = p.argv0(entrypoint)
	cmd.Dir = p.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.Env = env
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return stage1abi.SignalStatusBase + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run stage1 entrypoint %s: %w", path, err)
	}
	return 0, nil
}
