// Package guest is what runs inside the kvm flavor's virtual machine
// before and beside the pod's systemd: the initramfs's /init (Init),
// which loads the virtio modules, mounts the pod's stage1 rootfs that the
// host shares over virtio-fs and execs systemd in it as the pod's pid 1,
// and the agent (Agent), which serves the host's requests (stop, enter, the
// units and mounts of the apps a mutable pod adds)
// on a virtio-serial port.
//
// Both are started by the kernel or by Init, never on the host.
package guest

import "strconv"

// Names shared with the host side (stage1-kvm/hypervisor). They are part
// of the flavor's internal contract between the run entrypoint and the
// guest, not of the stage1 ABI.
const (
	// RootTag is the virtio-fs tag of the pod's stage1 rootfs.
	RootTag = "nscnroot"
	// PortDir holds a symlink per named virtio-serial port, as udev
	// makes them (the guest has no udev).
	PortDir = "/dev/virtio-ports"
	// ControlPort is the name of the agent's port.
	ControlPort = "nscn.control"
	// AgentPath is the agent's path in the stage1 image.
	AgentPath = "/nscn/agent"
	// SystemdPath is systemd's path in the stage1 image.
	SystemdPath = "/usr/lib/systemd/systemd"
	// ModuleDir holds the initramfs's kernel modules, loaded in the
	// order ModuleOrder lists.
	ModuleDir   = "/lib/modules"
	ModuleOrder = "/lib/modules/modules.order"
	// ReadyMarker is the line Init writes on the console just before it
	// execs systemd (the bench's bare-boot mark).
	ReadyMarker = "nscn-guest: root mounted"
	// HostBindDir holds the host paths the pod's binds bring in (the
	// nspawn flavor's layout, nspawn.HostBindDir): virtiofsd shows them
	// as plain directories of the shared root, which Init binds onto
	// themselves so that each is a mount of its own, as the app helper
	// expects (its read-only seal of the pod's root leaves mounts below
	// it as they are).
	HostBindDir = "/nscn/host"
)

// AppPort returns the names of the virtio-serial ports that carry app's
// stdout and stderr to the host.
func AppPort(app, stream string) string { return "nscn." + app + "." + stream }

// SlotPort returns the name of the virtio-serial port of a mutable pod's
// output slot n for stream (stdout, stderr): an app added to the running
// pod writes there. The "nscn-slot." prefix is no app's port: AppPort's
// are "nscn.".
func SlotPort(n int, stream string) string {
	return "nscn-slot." + strconv.Itoa(n) + "." + stream
}
