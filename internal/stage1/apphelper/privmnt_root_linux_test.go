package apphelper

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/testutil"
)

// TestPrivateMounts runs privateMounts in a child of the test binary (it
// moves the whole process), in a mount namespace of the child's own that
// stands for the pod's, with a shared tmpfs in it, and checks that every
// thread ends in one new namespace, that a mount made there does not
// reach the pod's, and that the clone of the shared mount taken before
// the slave step is still its peer: what the pod mounts below it reaches
// the clone.
func TestPrivateMounts(t *testing.T) {
	testutil.RequiresRoot(t)
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0); e == unix.ENOTSUP {
		t.Skip("the test binary links cgo, whose threads AllThreadsSyscall cannot reach: build it with CGO_ENABLED=0, as make does (and the helper is built)")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dir) //nolint:gosec // G204: the test binary itself, in a child role
	cmd.Env = append(os.Environ(), roleEnv+"=private-mounts")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "ok" {
		t.Fatalf("child: %s", got)
	}
}

// privateMountsMain is TestPrivateMounts' child.
func privateMountsMain() int {
	if err := privateMountsCheck(os.Args[len(os.Args)-1]); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ok")
	return 0
}

func privateMountsCheck(dir string) error {
	// The pod's namespace: nothing of it reaches the host's; dir is a
	// shared tmpfs in it, with a directory for each step below.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave: %w", err)
	}
	if err := unix.Mount("pod", dir, "tmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make it shared: %w", err)
	}
	for _, d := range []string{"mine", "clone", "later"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil { //nolint:gosec // G703: the test's own temporary directory, named in argv
			return err
		}
	}
	podNS, err := os.Open("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	defer func() { _ = podNS.Close() }()
	clones, err := privateMounts(func() ([]*os.File, error) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("open_tree: %w", err)
		}
		return []*os.File{os.NewFile(uintptr(fd), dir)}, nil
	})
	if err != nil {
		return err
	}
	defer closeAll(clones)
	// Every thread is in the new namespace.
	pod, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", podNS.Fd()))
	if err != nil {
		return err
	}
	tasks, err := filepath.Glob("/proc/self/task/*/ns/mnt")
	if err != nil {
		return fmt.Errorf("list the threads: %w", err)
	}
	if len(tasks) == 0 {
		return fmt.Errorf("no thread listed")
	}
	var ns string
	for _, task := range tasks {
		l, err := os.Readlink(task)
		if err != nil {
			return err
		}
		if l == pod || (ns != "" && l != ns) {
			return fmt.Errorf("thread %s in %s: the pod's is %s, the others' %s", task, l, pod, ns)
		}
		ns = l
	}
	// A mount here, and the clone moved into place.
	if err := unix.Mount("helper", filepath.Join(dir, "mine"), "tmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount in the new namespace: %w", err)
	}
	if err := unix.MoveMount(int(clones[0].Fd()), "", unix.AT_FDCWD, filepath.Join(dir, "clone"), unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move the clone: %w", err)
	}
	// From the pod's namespace: the helper's mount is not there; a
	// mount made there, below the shared tmpfs, reaches the clone.
	var podErr error
	ownthread.Run(func() {
		if podErr = unix.Unshare(unix.CLONE_FS); podErr != nil {
			return
		}
		if podErr = unix.Setns(int(podNS.Fd()), unix.CLONE_NEWNS); podErr != nil {
			return
		}
		if isMount(filepath.Join(dir, "mine")) {
			podErr = fmt.Errorf("the helper's mount reached the pod's namespace")
			return
		}
		podErr = unix.Mount("later", filepath.Join(dir, "later"), "tmpfs", 0, "")
	})
	if podErr != nil {
		return fmt.Errorf("in the pod's namespace: %w", podErr)
	}
	if !isMount(filepath.Join(dir, "clone", "later")) {
		return fmt.Errorf("the pod's later mount did not reach the clone of its shared mount")
	}
	if !isMount(filepath.Join(dir, "later")) {
		return fmt.Errorf("the pod's later mount did not reach the helper's slave copy")
	}
	return nil
}

// isMount reports whether p is the root of a mount (statx's
// STATX_ATTR_MOUNT_ROOT).
func isMount(p string) bool {
	var st unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, 0, 0, &st) != nil {
		return false
	}
	return st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}
