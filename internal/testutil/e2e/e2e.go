// Package e2e holds what the end-to-end suites (tests/, tests/security,
// tests/registry) share: an isolated nscn installation, its commands and
// their output. It is a package of its own, not part of testutil, because
// it imports mountplan, whose own tests import testutil.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
)

// Install is one isolated nscn installation of an end-to-end suite: its
// own data directory and local and system configuration directories
// (nscn's --dir, --local-config, --system-config), under a directory of
// the test's own.
type Install struct {
	Root, Dir, Local, System string
}

// NewInstall makes an Install under a new t.TempDir, with the
// configuration directories and extra (paths below the root, such as a
// HOME) created. Needs root. When the test ends, before the directory is
// removed, the mounts its pods left below it are unmounted (a failed test
// leaks overlays otherwise) and the host's /var/log/journal links to
// their journals removed (gc removes them; a test that does not gc its
// pods would leave them dangling), and so are the empty cgroups the
// nspawn flavor made for them (nscn/UUID in each hierarchy: a suite's
// thousand pods would otherwise stay in the host's cgroup tree), and the
// network namespaces that pods not collected by gc keep bound under
// /run/netns (nscn-UUID: a test that leaves an exited pod would leave one
// more namespace on the host each run).
func NewInstall(t testing.TB, extra ...string) Install {
	t.Helper()
	testutil.RequiresRoot(t)
	root := t.TempDir()
	in := Install{Root: root, Dir: filepath.Join(root, "data"), Local: filepath.Join(root, "etc"), System: filepath.Join(root, "lib")}
	for _, d := range append([]string{in.Local, in.System}, extra...) {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after t.TempDir, so it runs before the removal.
	t.Cleanup(func() {
		if err := mountplan.UnmountAll(context.Background(), root); err != nil {
			t.Errorf("unmount test pods: %v", err)
		}
		pods, _ := filepath.Glob(filepath.Join(in.Dir, "pods", "*", "*-*-*-*-*"))
		removePodCgroups(pods)
		removePodNetns(pods)
		links, _ := filepath.Glob("/var/log/journal/*")
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, root+"/") {
				if err := os.Remove(l); err != nil {
					t.Errorf("remove journal link: %v", err)
				}
			}
		}
	})
	return in
}

// Command is nscn (bin) with the installation's global flags and args,
// in the C locale, with extraEnv added to the test's environment.
func (in Install) Command(ctx context.Context, bin string, extraEnv []string, args ...string) *exec.Cmd {
	all := append([]string{"--dir", in.Dir, "--local-config", in.Local, "--system-config", in.System}, args...)
	c := exec.CommandContext(ctx, bin, all...) //nolint:gosec // G204: the suite runs the nscn under test
	c.Env = append(append(os.Environ(), "LC_ALL=C"), extraEnv...)
	return c
}

// Output runs c with stdin and returns what it wrote and its exit code.
// A command that could not be run at all fails the test.
func Output(t testing.TB, c *exec.Cmd, stdin io.Reader) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	c.Stdin, c.Stdout, c.Stderr = stdin, &out, &errb
	if err := c.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", c.Args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// MustEnv is the environment variable name, which the suite's make target
// sets; unset, the test fails naming the target.
func MustEnv(t testing.TB, name, target string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the suite with `make %s`", name, target)
	}
	return v
}

// removePodNetns removes the names under /run/netns (nscn-UUID) of the
// network namespaces of pods (their directories) that no gc collected.
func removePodNetns(pods []string) {
	for _, p := range pods {
		ns := filepath.Join("/run/netns", "nscn-"+filepath.Base(p))
		// A namespace a process still holds lives on without its
		// name; one nobody holds is freed with it.
		if err := unix.Unmount(ns, unix.MNT_DETACH); err == nil || errors.Is(err, unix.EINVAL) {
			_ = os.Remove(ns)
		}
	}
}

// removePodCgroups removes the empty cgroups nscn/UUID, and those below
// them, of pods (their directories), in every cgroup hierarchy mounted
// whole. A cgroup that still has processes stays (rmdir fails).
func removePodCgroups(pods []string) {
	if len(pods) == 0 {
		return
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	infos, err := mountplan.ParseMountInfo(f)
	_ = f.Close()
	if err != nil {
		return
	}
	for _, in := range infos {
		if (in.FSType != "cgroup" && in.FSType != "cgroup2") || in.Root != "/" {
			continue
		}
		for _, p := range pods {
			top := filepath.Join(in.MountPoint, "nscn", filepath.Base(p))
			var dirs []string
			_ = filepath.WalkDir(top, func(d string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					dirs = append(dirs, d)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				_ = unix.Rmdir(dirs[i])
			}
		}
	}
}

// podCgroupHierarchies are where a pod's cgroup, nscn/UUID, is made on
// the host: the name=systemd and cgroup2 hierarchies of a hybrid host,
// and the one hierarchy of a unified host.
var podCgroupHierarchies = []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"}

// PodCgroupsLeft returns the cgroups of the pod with this UUID that
// still exist on the host; after gc there must be none.
func PodCgroupsLeft(uuid string) []string {
	var left []string
	for _, h := range podCgroupHierarchies {
		cg := filepath.Join(h, "nscn", uuid)
		if _, err := os.Lstat(cg); err == nil {
			left = append(left, cg)
		}
	}
	return left
}
