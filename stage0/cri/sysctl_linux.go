package cri

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
)

// A sandbox's sysctls are set in its pod's namespaces, never the host's:
// only the namespaced ones are taken, each by the namespace it belongs
// to (the kernel's list; what Kubernetes calls safe and unsafe sysctls
// alike, since both are namespaced).
var sysctlNamespaces = []sysctlNS{
	{"kernel.shm_rmid_forced", "ipc", unix.CLONE_NEWIPC},
	{"kernel.shmmax", "ipc", unix.CLONE_NEWIPC},
	{"kernel.shmall", "ipc", unix.CLONE_NEWIPC},
	{"kernel.shmmni", "ipc", unix.CLONE_NEWIPC},
	{"kernel.msgmax", "ipc", unix.CLONE_NEWIPC},
	{"kernel.msgmnb", "ipc", unix.CLONE_NEWIPC},
	{"kernel.msgmni", "ipc", unix.CLONE_NEWIPC},
	{"kernel.sem", "ipc", unix.CLONE_NEWIPC},
	{"fs.mqueue.", "ipc", unix.CLONE_NEWIPC},
	{"net.", "net", unix.CLONE_NEWNET},
}

// sysctlNS names the namespace of the sysctls a name or prefix covers.
type sysctlNS struct {
	prefix string // a name, or a prefix ending in "."
	ns     string // /proc/PID/ns/NAME
	flag   int
}

// sysctl is one sysctl to set: its file under /proc/sys and the
// namespace that file belongs to.
type sysctl struct {
	name, value, path, ns string
	flag                  int
}

// parseSysctls checks a sandbox's sysctls and returns them in name
// order: namespaced ones only, names of dot-separated components (a
// slash also separates, as sysctl(8) takes it), no component empty or
// "..", values of one line; net.* ones not with the host's network.
func parseSysctls(m map[string]string, hostNetwork bool) ([]sysctl, error) {
	var out []sysctl
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		comps := strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '/' })
		if len(comps) < 2 || strings.Join(comps, ".") != strings.ReplaceAll(name, "/", ".") {
			return nil, errdefs.InvalidArgument("sysctl %q: not a sysctl name", name)
		}
		for _, c := range comps {
			if c == ".." || strings.ContainsFunc(c, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
				return nil, errdefs.InvalidArgument("sysctl %q: not a sysctl name", name)
			}
		}
		if strings.ContainsAny(v, "\n\x00") {
			return nil, errdefs.InvalidArgument("sysctl %s: a value is one line", name)
		}
		dotted := strings.Join(comps, ".")
		i := slices.IndexFunc(sysctlNamespaces, func(n sysctlNS) bool {
			return dotted == n.prefix || strings.HasSuffix(n.prefix, ".") && strings.HasPrefix(dotted, n.prefix)
		})
		if i < 0 {
			return nil, errdefs.InvalidArgument("sysctl %s is not namespaced: a pod cannot set it without setting it for the host", name)
		}
		n := sysctlNamespaces[i]
		if n.ns == "net" && hostNetwork {
			return nil, errdefs.InvalidArgument("sysctl %s: the sandbox has the host's network, whose sysctls are the host's", name)
		}
		out = append(out, sysctl{name: name, value: v, path: filepath.Join(append([]string{"/proc/sys"}, comps...)...), ns: n.ns, flag: n.flag})
	}
	return out, nil
}

// setSysctls sets each of ss in the namespaces of pod p's process.
func setSysctls(ctx context.Context, p *pod.Pod, ss []sysctl) error {
	if len(ss) == 0 {
		return nil
	}
	pid, err := p.WaitPID(ctx)
	if err != nil {
		return fmt.Errorf("sysctls: %w", err)
	}
	for _, s := range ss {
		if err := setSysctl(pid, s); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.name, s.value, err)
		}
	}
	return nil
}

// setSysctl writes s on a thread of its own that joins the namespace of
// pid that s belongs to: the /proc/sys files of a namespaced sysctl are
// the writer's namespace's. The thread ends with its goroutine, never to
// run other goroutines in the pod's namespace.
func setSysctl(pid int, s sysctl) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread goes with the goroutine
		errc <- func() error {
			// A thread shares its fs attributes with the process; setns
			// of a namespace other than mnt and user needs no unshare.
			f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, s.ns)) //nolint:gosec // G703: ns is "ipc" or "net", from sysctlNamespaces
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			if err := unix.Setns(int(f.Fd()), s.flag); err != nil {
				return &os.SyscallError{Syscall: "setns", Err: err}
			}
			w, err := os.OpenFile(s.path, os.O_WRONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			_, err = w.WriteString(s.value)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			return err
		}()
	}()
	return <-errc
}
