package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// Init is the initramfs's /init, the guest's first process. It returns
// only on failure; the caller then powers the guest off.
func Init(console io.Writer) error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	if wantsBootMarker(strings.Fields(string(cmdline))) {
		_, _ = fmt.Fprintln(console, BootMarker)
		return ErrBootMarker
	}
	args := strings.Fields(string(cmdline))
	if err := loadModules(args, bootModule); err != nil {
		return err
	}
	if err := linkPorts(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(RootTag, newRoot, "virtiofs", 0, ""); err != nil {
		return fmt.Errorf("mount the pod's root (virtio-fs %s): %w", RootTag, err)
	}
	// Before /sys goes: a slower guest, not a failed one, without it.
	if err := setReadahead(newRoot, RootReadaheadKiB); err != nil {
		_, _ = fmt.Fprintln(console, "nscn-guest:", err)
	}
	// The NIC's driver only for a pod with a network: loading and
	// relocating virtio_net and its two dependencies took about 90 ms
	// of a TCG boot. The modules are in the initramfs, which the
	// switch below leaves behind, so the pod's network configuration
	// is read through the new root first.
	if _, err := os.Stat(newRoot + NetConfigFile); err == nil {
		if err := loadModules(args, netModule); err != nil {
			return err
		}
	}
	// systemd mounts its own /proc and /sys; /dev stays the devtmpfs
	// that holds the port links.
	if err := unix.Mount("/dev", newRoot+"/dev", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move /dev: %w", err)
	}
	for _, d := range []string{"/proc", "/sys"} {
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", d, err)
		}
	}
	// switch_root: the initramfs stays in memory, unreachable; it is a
	// few megabytes.
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := bindHostPaths(); err != nil {
		return err
	}
	if err := configureNetwork(); err != nil {
		return fmt.Errorf("configure the network: %w", err)
	}
	// The agent is not started here but by the pod's systemd, once the
	// apps' units have started (nscn-agent.service): beside systemd's
	// own start on the guest's vCPU it slowed the boot.
	_, _ = fmt.Fprintln(console, ReadyMarker)
	argv := []string{SystemdPath, "--log-target=console"}
	env := []string{
		"PATH=/usr/bin:/usr/sbin:/bin:/sbin",
		// The pod's units are all in one directory (the image has
		// none of its own). systemd's default search path is 13
		// directories, 7 of them on the shared root, which it checks
		// for changes whenever a unit it has not found is wanted: the
		// .mount unit of each mount the app helper makes, each check
		// round trips to virtiofsd. With the one directory a pod took
		// 0.7 to 1.1 s less CPU under TCG (qemu and virtiofsd, 4
		// alternating runs, load 11 to 13).
		"SYSTEMD_UNIT_PATH=" + sdpod.UnitDir,
	}
	return fmt.Errorf("exec systemd: %w", unix.Exec(SystemdPath, argv, env))
}

// netModules are the guest NIC's driver and the modules that only it
// needs, in any kernel the image may carry (6.1 and 7.3: virtio_net
// depends on net_failover, which depends on failover). Init loads them
// only for a pod with a network.
var netModules = map[string]bool{"virtio_net.ko": true, "net_failover.ko": true, "failover.ko": true}

// netModule and bootModule split the initramfs's modules: the NIC's, and
// every other (the virtio transport, virtio-fs and the serial ports,
// where the kernel does not have them built in).
func netModule(name string) bool  { return netModules[name] }
func bootModule(name string) bool { return !netModules[name] }

// loadModules loads the initramfs's modules that want accepts, in the
// order ModuleOrder lists them (dependencies first), each with the
// parameters the kernel command line gives it (modprobe's job, which the
// kernel leaves to user space for modules).
func loadModules(cmdline []string, want func(name string) bool) error {
	f, err := os.Open(ModuleOrder)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || !want(name) {
			continue
		}
		if err := loadModule(filepath.Join(ModuleDir, name), moduleParams(cmdline, strings.TrimSuffix(name, ".ko"))); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path, params string) error {
	f, err := os.Open(path) //nolint:gosec // G304: a module of the initramfs
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := unix.FinitModule(int(f.Fd()), params, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// linkPorts makes PortDir/NAME → ../vportXpY for each named
// virtio-serial port, as udev's rules would.
func linkPorts(deadline time.Time) error {
	if err := os.MkdirAll(PortDir, 0o755); err != nil {
		return err
	}
	for {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		found := 0
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			name := strings.TrimSpace(string(b))
			if err != nil || name == "" || strings.ContainsRune(name, '/') {
				continue
			}
			if name == ControlPort || name == EnterPort {
				found++
			}
			link := filepath.Join(PortDir, name)
			if _, err := os.Lstat(link); err == nil { //nolint:gosec // G703: name has no slash (checked above), so link stays in PortDir
				continue
			}
			if err := os.Symlink("../"+e.Name(), link); err != nil {
				return err
			}
		}
		if found == 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no virtio-serial ports %s and %s after 5s", ControlPort, EnterPort)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bindHostPaths binds each entry of HostBindDir onto itself.
func bindHostPaths() error {
	ents, err := os.ReadDir(HostBindDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(HostBindDir, e.Name())
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", p, err)
		}
	}
	return nil
}
