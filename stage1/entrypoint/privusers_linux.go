package entrypoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/stage1/idshift"
	"github.com/nosecone/nscn/internal/stage1/ownthread"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// podUsers is how a pod run with --private-users gets its files owned by
// its user namespace's IDs (Documentation/security.md, "--private-users").
// Run computes it once every file of the stage1 rootfs is written, and
// starts systemd-nspawn through it.
type podUsers struct {
	r idrange.Range
	// idmapped are the apps' rootfses that systemd-nspawn gets idmapped
	// clones of in a mount namespace of its own; nil when they were
	// chowned instead.
	idmapped []string
	userns   *os.File
	// netns is the pod's network namespace (a CNI one), which
	// systemd-nspawn is started in: in its user namespace it may not
	// join it itself (nspawn.ArgvConfig.NetNS).
	netns string
}

// shiftPodUsers makes the pod's files appear owned by the range r inside
// the pod. The stage1 rootfs, systemd-nspawn's directory, is chowned:
// systemd-nspawn creates its mount points there as host root, which an
// idmapped mount would refuse (host root has no ID in it); prepare
// mounted it with metacopy=on, so only metadata is copied up, and a
// --no-overlay copy is changed in place. The apps' rootfses (appRoots)
// are idmapped where each allows it, probed on detached clones; else
// chowned too. Nothing of the store's trees is written: overlayfs only
// reads its lower layer. hostOwned are host files outside the rootfs
// that the pod's root must write (its journal directory, its apps'
// cgroup.procs): their owner becomes the pod's root.
func shiftPodUsers(ctx context.Context, log *slog.Logger, root string, appRoots []string, r idrange.Range, hostOwned []string) (_ *podUsers, err error) {
	for _, p := range hostOwned {
		if err := os.Lchown(p, int(r.Base), -1); err != nil {
			return nil, fmt.Errorf("give the pod's root %s: %w", p, err)
		}
	}
	ns, err := idshift.UserNS(r, "/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ns.Close()
		}
	}()
	idmapped := appRoots
	for _, m := range appRoots {
		if ok, why := idshift.IDMapSupported(m, ns); !ok {
			log.DebugContext(ctx, "no idmapped mount: the apps' root filesystems are chowned", "mount", m, "err", why)
			idmapped = nil
			break
		}
	}
	if err := idshift.ChownTree(root, r, idmapped); err != nil {
		return nil, fmt.Errorf("shift the pod's file owners by %d: %w", r.Base, err)
	}
	if idmapped == nil {
		_ = ns.Close()
		return &podUsers{r: r}, nil
	}
	log.DebugContext(ctx, "idmapped mounts of the apps' root filesystems", "mounts", idmapped, "range", r.String())
	return &podUsers{r: r, idmapped: idmapped, userns: ns}, nil
}

// startNspawn starts cmd (systemd-nspawn) and returns what lets the
// thread it was started from end: call it once systemd-nspawn is waited
// for, since systemd-nspawn's parent-death signal follows the thread that
// started it. Without private users (u nil) and without join it starts
// cmd from the calling goroutine, and release does nothing.
//
// Otherwise it starts cmd from a thread of its own, locked and never
// unlocked, which first takes what the child must inherit: with u, the
// pod's network namespace (in its user namespace systemd-nspawn may not
// join it itself) and, with idmapped mounts, a mount namespace of its
// own, a slave of the host's (so that the pod's unmounts still reach
// it), where the idmapped clones are stacked: the host keeps seeing the
// pod's files unshifted, and what run writes into the rootfs later (an
// app's status) is owned by the pod's root inside; then join
// (podCgroups.join), which moves the thread alone into the pod's v1
// cgroups.
func startNspawn(cmd *exec.Cmd, u *podUsers, join func() error) (release func(), err error) {
	if join == nil && (u == nil || (u.idmapped == nil && u.netns == "")) {
		return func() {}, cmd.Start()
	}
	errc := make(chan error, 1)
	done := make(chan struct{})
	ownthread.Go(func() {
		if u != nil && u.netns != "" {
			if err := joinNetNS(u.netns); err != nil {
				errc <- err
				return
			}
		}
		if u != nil && u.idmapped != nil {
			if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
				errc <- os.NewSyscallError("unshare mount namespace", err)
				return
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				errc <- fmt.Errorf("make the mounts of systemd-nspawn's namespace slaves: %w", err)
				return
			}
			if err := idshift.IDMapMounts(u.idmapped, u.userns); err != nil {
				errc <- err
				return
			}
		}
		if join != nil {
			if err := join(); err != nil {
				errc <- err
				return
			}
		}
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-done
		}
	})
	if err := <-errc; err != nil {
		return func() {}, err
	}
	return sync.OnceFunc(func() { close(done) }), nil
}

// joinNetNS moves the calling thread into the network namespace at p.
func joinNetNS(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return &os.PathError{Op: "setns", Path: p, Err: err}
	}
	return nil
}

// Close closes the user namespace.
func (u *podUsers) Close() {
	if u == nil {
		return
	}
	if u.userns != nil {
		_ = u.userns.Close()
	}
}

// privateUsersHostFiles are the host files outside the stage1 rootfs
// that the pod's root must be able to write: the journal directory
// journald writes in, and the cgroup.procs (and v1 tasks) files of the
// apps' cgroups the app helper joins.
func privateUsersHostFiles(podDir, machineID string, cgroupBinds []sdpod.Bind) []string {
	j := filepath.Join(podDir, stage1abi.JournalDir)
	out := []string{j, filepath.Join(j, machineID)}
	for _, b := range cgroupBinds {
		for _, f := range []string{"cgroup.procs", "tasks"} {
			p := filepath.Join(b.Source, f)
			if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
				out = append(out, p)
			}
		}
	}
	return out
}

// userNSRange returns the ID range of the user namespace of the process
// at proc (/proc/PID), as its uid_map shows it from enter's (the
// host's) namespace: zero when it is the host's own. A map other than
// one range from ID 0, which no nscn pod has, is refused.
func userNSRange(proc string) (idrange.Range, error) {
	self, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read the user namespace: %w", err)
	}
	its, err := os.Readlink(filepath.Join(proc, "ns", "user"))
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read the app's user namespace: %w", err)
	}
	if its == self {
		return idrange.Range{}, nil
	}
	b, err := os.ReadFile(filepath.Join(proc, "uid_map")) //nolint:gosec // G304: a /proc path of the pod's process
	if err != nil {
		return idrange.Range{}, fmt.Errorf("read the app's user namespace: %w", err)
	}
	return parseUIDMap(string(b))
}

// parseUIDMap reads a uid_map of one line mapping 0…COUNT-1.
func parseUIDMap(m string) (idrange.Range, error) {
	f := strings.Fields(m)
	if len(f) != 3 || f[0] != "0" {
		return idrange.Range{}, errdefs.FailedPrecondition("the app's user namespace maps %q, not one range from ID 0", strings.TrimSpace(m))
	}
	return idrange.Parse(f[1] + ":" + f[2])
}

// shiftCreds maps the app's IDs to the host's through r.
func shiftCreds(c isolate.Creds, r idrange.Range) (isolate.Creds, error) {
	var ok bool
	out := isolate.Creds{}
	if out.UID, ok = r.Shift(c.UID); !ok {
		return c, errdefs.FailedPrecondition("uid %d is outside the pod's user namespace (%s)", c.UID, r)
	}
	if out.GID, ok = r.Shift(c.GID); !ok {
		return c, errdefs.FailedPrecondition("gid %d is outside the pod's user namespace (%s)", c.GID, r)
	}
	for _, g := range c.Groups {
		h, ok := r.Shift(g)
		if !ok {
			return c, errdefs.FailedPrecondition("group %d is outside the pod's user namespace (%s)", g, r)
		}
		out.Groups = append(out.Groups, h)
	}
	return out, nil
}
