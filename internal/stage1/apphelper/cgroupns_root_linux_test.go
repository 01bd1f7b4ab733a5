package apphelper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
)

// roleEnv selects a child mode of the test binary (TestMain).
const roleEnv = "NSCN_ENTRYPOINT_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "cgroup2-view":
		os.Exit(cgroup2ViewMain()) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	case "private-mounts":
		os.Exit(privateMountsMain()) //nolint:forbidigo // the same
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

// cgroup2View is what the child of TestMountAppCgroupV2 saw.
type cgroup2View struct {
	Procs    string   `json:"procs"`    // cgroup.procs at the mount's root
	Subdirs  []string `json:"subdirs"`  // cgroups below the mount's root
	MkdirErr string   `json:"mkdirErr"` // creating a cgroup there
	Self     string   `json:"self"`     // /proc/self/cgroup afterwards
}

// cgroup2ViewMain runs in a mount namespace of its own (the parent starts
// it with CLONE_NEWNS). It waits for one byte on stdin, while the parent
// moves it into a fresh cgroup, then runs mountAppCgroupV2 on a rootfs
// whose path is its first argument and reports what the mount shows.
func cgroup2ViewMain() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 3 }
	if _, err := io.ReadFull(os.Stdin, make([]byte, 1)); err != nil {
		return fail(err)
	}
	rootfs := os.Args[len(os.Args)-1]
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) //nolint:gosec // G304: a directory the parent test made, named in argv
	if err != nil {
		return fail(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := mountAppCgroupV2(context.Background(), log, root, nil); err != nil {
		return fail(err)
	}
	dir := filepath.Join(rootfs, "sys/fs/cgroup")
	var v cgroup2View
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")) //nolint:gosec // G304: a cgroup control file
	if err != nil {
		return fail(err)
	}
	v.Procs = strings.TrimSpace(string(procs))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fail(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			v.Subdirs = append(v.Subdirs, e.Name())
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "x"), 0o755); err != nil { //nolint:gosec // G703: a cgroup the test tries to create in its own mount
		v.MkdirErr = err.Error()
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return fail(err)
	}
	v.Self = string(self)
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		return fail(err)
	}
	return 0
}

// cgroup2Mount returns where this host mounts the unified hierarchy with
// its root ("/sys/fs/cgroup" on a unified host, "/sys/fs/cgroup/unified"
// on a hybrid one), or "".
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	infos, err := mountplan.ParseMountInfo(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.FSType == "cgroup2" && in.Root == "/" {
			return in.MountPoint
		}
	}
	return ""
}

// TestMountAppCgroupV2 checks, on the host's real cgroup2 hierarchy, the
// view the app helper gives an app on a unified host: a child in a fresh
// cgroup mounts cgroup2 from a cgroup namespace of its own onto a
// rootfs's /sys/fs/cgroup. The mount must show that cgroup as its root
// (only the child in cgroup.procs, no other cgroup), be read-only, and
// leave the rest of the process in the host's cgroup namespace.
func TestMountAppCgroupV2(t *testing.T) {
	testutil.RequiresRoot(t)
	mount := cgroup2Mount(t)
	if mount == "" {
		if testutil.InCI() {
			t.Fatal("no cgroup2 hierarchy mounted")
		}
		t.Skip("no cgroup2 hierarchy mounted")
	}
	name := "nscn-test-" + uuid.NewString()[:8]
	cg := filepath.Join(mount, name)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(cg); err != nil && !errors.Is(err, unix.ENOENT) {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "sys/fs/cgroup"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$", rootfs) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), roleEnv+"=cgroup2-view")
	// Its own mount namespace (private, as Go's fork makes it), so that
	// the mount never reaches the host's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(pid), 0); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	var v cgroup2View
	if err := json.Unmarshal([]byte(stdout.String()), &v); err != nil {
		t.Fatalf("child output %q: %v", stdout.String(), err)
	}
	if v.Procs != pid {
		t.Errorf("cgroup.procs at the mount's root = %q, want only the child %s", v.Procs, pid)
	}
	if len(v.Subdirs) != 0 {
		t.Errorf("the mount shows other cgroups: %v", v.Subdirs)
	}
	if !strings.Contains(v.MkdirErr, "read-only") {
		t.Errorf("mkdir in the mount: %q, want a read-only file system error", v.MkdirErr)
	}
	// The namespace stayed on the goroutine's thread: the process itself
	// still sees its cgroup's full path.
	if !strings.Contains(v.Self, "::/"+name+"\n") {
		t.Errorf("/proc/self/cgroup after the mount:\n%s\nwant the full path /%s", v.Self, name)
	}
}
