// Package hypervisor is the kvm flavor's qemu driver: the command lines
// of qemu (Argv) and of virtiofsd (VirtiofsdArgv) for one pod, and the
// pod's memory and vCPU sizes from its apps' isolators (Size).
//
// The machine is q35 with a direct kernel boot (-kernel/-initrd: no disk,
// no boot-device scan), -nodefaults (no VGA, no NIC, no floppy, no
// CD-ROM), the console on the first serial port and every device a
// virtio-pci one. The microvm machine type would skip PCI enumeration, but
// under TCG the guest kernel cannot calibrate its clock there (no PIT,
// no HPET) and never boots.
//
// It is pure: no I/O. The run entrypoint starts the processes.
package hypervisor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// Port is a virtio-serial port whose guest side writes to a host file
// descriptor (an app's stdout or stderr), or, for an Input port, reads
// from one (an app's stdin).
type Port struct {
	Name string // the port's name (guest.AppPort)
	// FD is the descriptor number in qemu's process (exec.Cmd
	// ExtraFiles: 3 and up) of an output port.
	FD int
	// Socket, for an input port (the guest reads it), is a unix socket
	// that qemu serves, relative to its working directory. qemu waits
	// for the host's connection before it starts the guest, reads it
	// only while the guest has the port open, and when the host closes
	// it the guest's reads return end of file.
	Socket string
}

// NIC is a guest network interface on a tap device.
type NIC struct {
	FD  int    // the tap's descriptor in qemu's process (ExtraFiles)
	MAC string // the guest's address: the pod interface's it stands for
}

// Config is one pod's virtual machine.
type Config struct {
	QEMU   string // qemu-system-x86_64
	Kernel string // vmlinuz
	Initrd string // the initramfs
	Accel  kvm.Accel
	// MemoryMiB and CPUs size the guest (Size).
	MemoryMiB int64
	CPUs      int
	// RootSocket is virtiofsd's vhost-user socket, ControlSocket the
	// agent's control port and EnterSocket its enter port, both served
	// by qemu. All are relative to qemu's working directory, the pod
	// directory, so that a long data directory does not exceed a unix
	// socket's 108 bytes.
	RootSocket, ControlSocket, EnterSocket string
	// Console is where the guest's serial console goes: "stdio" for
	// --interactive, else a file (appended to).
	Console string
	Ports   []Port
	// NICs are the guest's network interfaces, each on a tap device
	// whose descriptor qemu inherits (made in the pod's network
	// namespace, which qemu does not join).
	NICs []NIC
	// Cmdline is appended to the kernel command line.
	Cmdline []string
}

// Argv returns qemu's command line.
func Argv(c Config) []string {
	a := []string{
		c.QEMU,
		"-name", "nscn-pod",
		"-machine", "q35,accel=" + string(c.Accel),
		"-cpu", cpuModel(c.Accel),
		"-m", strconv.FormatInt(c.MemoryMiB, 10),
		"-smp", strconv.Itoa(c.CPUs),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-display", "none",
		// virtio-fs needs the guest's memory shared with virtiofsd.
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", c.MemoryMiB),
		"-numa", "node,memdev=mem",
		"-chardev", "socket,id=root,path=" + c.RootSocket,
		"-device", "vhost-user-fs-pci,queue-size=1024,chardev=root,tag=" + guest.RootTag,
		"-device", "virtio-serial-pci,id=ports",
		"-chardev", "socket,id=control,path=" + c.ControlSocket + ",server=on,wait=off",
		"-device", "virtserialport,bus=ports.0,chardev=control,name=" + guest.ControlPort,
		"-chardev", "socket,id=enter,path=" + c.EnterSocket + ",server=on,wait=off",
		"-device", "virtserialport,bus=ports.0,chardev=enter,name=" + guest.EnterPort,
	}
	for i, p := range c.Ports {
		id := "port" + strconv.Itoa(i)
		chardev := fmt.Sprintf("file,id=%s,path=/dev/fd/%d,append=on", id, p.FD)
		if p.Socket != "" {
			chardev = fmt.Sprintf("socket,id=%s,path=%s,server=on,wait=on", id, p.Socket)
		}
		a = append(a,
			"-chardev", chardev,
			"-device", fmt.Sprintf("virtserialport,bus=ports.0,chardev=%s,name=%s", id, p.Name))
	}
	if c.Console == "stdio" {
		a = append(a, "-chardev", "stdio,id=console,signal=off")
	} else {
		a = append(a, "-chardev", "file,id=console,path="+c.Console+",append=on")
	}
	a = append(a, "-serial", "chardev:console")
	for i, n := range c.NICs {
		id := "net" + strconv.Itoa(i)
		a = append(a,
			"-netdev", fmt.Sprintf("tap,id=%s,fd=%d", id, n.FD),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, n.MAC))
	}
	cmdline := append(BaseCmdline(), c.Cmdline...)
	a = append(a,
		"-kernel", c.Kernel,
		"-initrd", c.Initrd,
		"-append", strings.Join(cmdline, " "))
	return a
}

// BaseCmdline is the kernel command line every pod's guest boots with,
// before Config.Cmdline (the bench's bare boot takes it too).
func BaseCmdline() []string {
	return []string{
		"console=ttyS0", "quiet", "panic=-1", "reboot=t",
		// The pod's systemd sees cgroup v2 only: the apps' limits are
		// set on their units (MemoryMax=, CPUQuota=).
		"systemd.unified_cgroup_hierarchy=1",
		// A pod is a disposable guest: no speculative-execution
		// mitigations inside it (the host's still apply to qemu), no
		// audit, no console blanking.
		"mitigations=off", "audit=0", "tsc=reliable", "no_timer_check",
	}
}

// CPUModel is the guest CPU for accelerator a (cpuModel).
func CPUModel(a kvm.Accel) string { return cpuModel(a) }

// cpuModel is the guest CPU: the host's under KVM; under TCG, Nehalem:
// the x86-64-v2 level that distributions build for (SSE4.2, POPCNT,
// CMPXCHG16B), without AVX or XSAVE, whose wider register state every
// context switch of an emulated guest saves and restores (qemu's "max"
// has both: a Go program's start took about twice as long with it).
func cpuModel(a kvm.Accel) string {
	if a == kvm.AccelKVM {
		return "host"
	}
	return "Nehalem"
}

// VirtiofsdArgv returns virtiofsd's command line sharing dir on the
// listening vhost-user socket it inherits as file descriptor fd.
func VirtiofsdArgv(virtiofsd string, fd int, dir string) []string {
	return []string{
		virtiofsd,
		"--fd=" + strconv.Itoa(fd),
		"-o", "source=" + dir,
		// The guest is the only writer of the pod's root while it runs;
		// the host reads the status files after it has ended.
		"-o", "cache=auto",
		"-o", "no_posix_lock",
		"-o", "xattr",
		// Each host mount below the root (the apps' rootfs overlays,
		// the volumes) is a mount of its own in the guest too: the app
		// helper's read-only seal of the pod's root leaves them
		// writable, as on nspawn.
		"-o", "announce_submounts",
	}
}

// Guest sizes.
const (
	// OverheadMiB is the guest's memory beyond its apps': the kernel,
	// the pod's systemd, the agent and the page cache of the shared
	// root.
	OverheadMiB = 192
	// DefaultAppMiB is what an app without a memory limit adds.
	DefaultAppMiB = 128
	// DefaultAppMilli is what an app without a CPU limit adds: a vCPU,
	// so that two unlimited apps do not share one (the ACE validator's
	// sidekick polls for the main app's files while the main app runs
	// its pre-start handler).
	DefaultAppMilli = 1000
)

// AppLimits are one app's resource isolators.
type AppLimits struct {
	MemoryBytes int64 // 0: none
	// CPUMilli is the app's CPU limit in thousandths of a CPU; 0: none.
	CPUMilli int64
}

// Size returns the guest's memory and vCPUs for apps: OverheadMiB plus
// each app's memory limit (DefaultAppMiB without one), and as many vCPUs
// as the apps' CPU limits (DefaultAppMilli without one) add up to,
// rounded up, at least one and at most hostCPUs.
func Size(apps []AppLimits, hostCPUs int) (memMiB int64, cpus int) {
	memMiB = OverheadMiB
	var milli int64
	for _, a := range apps {
		if a.MemoryBytes > 0 {
			memMiB += (a.MemoryBytes + (1<<20 - 1)) >> 20
		} else {
			memMiB += DefaultAppMiB
		}
		if a.CPUMilli > 0 {
			milli += a.CPUMilli
		} else {
			milli += DefaultAppMilli
		}
	}
	cpus = int((milli + 999) / 1000)
	if cpus < 1 {
		cpus = 1
	}
	if hostCPUs > 0 && cpus > hostCPUs {
		cpus = hostCPUs
	}
	return memMiB, cpus
}

// BootArgv is the command line of a bare boot of kernel and initrd to the
// boot marker (guest.BootMarkerParam: the flavor's /init prints
// guest.BootMarker on the console and powers the guest off), with the
// machine type, CPU model, memory and kernel command line of a pod's
// guest, the console written to the file console. The bench's bare boot
// and run's check that KVM runs this kernel use it.
func BootArgv(qemu, kernel, initrd, console string, accel kvm.Accel) []string {
	mem, _ := Size([]AppLimits{{}}, 1)
	return []string{
		qemu, "-name", "nscn-boot",
		"-machine", "q35,accel=" + string(accel), "-cpu", cpuModel(accel),
		"-m", strconv.FormatInt(mem, 10), "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-display", "none",
		"-serial", "file:" + console,
		"-kernel", kernel, "-initrd", initrd,
		"-append", strings.Join(append(BaseCmdline(), guest.BootMarkerParam), " "),
	}
}
