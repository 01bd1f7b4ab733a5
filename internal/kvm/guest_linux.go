package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test guest: real-mode code at guestAddr that computes guestValue,
// writes it to I/O port guestPort and halts. The value is computed so
// that an exit with it proves the vCPU executed instructions, not only
// that KVM made up an exit.
var guestCode = []byte{
	0xb0, 0x20, // mov al, 0x20
	0x04, 0x0a, // add al, 0x0a
	0xe6, 0xe9, // out 0xe9, al (0xe9: the Bochs debug port)
	0xf4, // hlt
}

const (
	guestAddr  = 0x1000 // guest-physical address of the memory slot
	guestMem   = 0x1000 // one page
	guestPort  = 0xe9
	guestValue = 0x2a

	// kvmAPIVersion is the only KVM API version there has been since
	// Linux 2.6.22.
	kvmAPIVersion = 12
)

// The ioctl requests of linux/kvm.h: _IO and _IOR/_IOW on KVMIO (0xae).
// The test checks them against the header's values.
const (
	iocWrite = 1
	iocRead  = 2
	kvmio    = 0xae
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | kvmio<<8 | nr }

var (
	kvmGetAPIVersion       = ioc(0, 0x00, 0)
	kvmCreateVM            = ioc(0, 0x01, 0)
	kvmGetVCPUMmapSize     = ioc(0, 0x04, 0)
	kvmCreateVCPU          = ioc(0, 0x41, 0)
	kvmSetUserMemoryRegion = ioc(iocWrite, 0x46, unsafe.Sizeof(userspaceMemoryRegion{}))
	kvmRun                 = ioc(0, 0x80, 0)
	kvmSetRegs             = ioc(iocWrite, 0x82, unsafe.Sizeof(regs{}))
	kvmGetSregs            = ioc(iocRead, 0x83, unsafe.Sizeof(sregs{}))
	kvmSetSregs            = ioc(iocWrite, 0x84, unsafe.Sizeof(sregs{}))
)

// userspaceMemoryRegion is struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	slot          uint32
	flags         uint32
	guestPhysAddr uint64
	memorySize    uint64
	userspaceAddr uint64
}

// regs is struct kvm_regs (x86).
type regs struct {
	rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp uint64
	r8, r9, r10, r11, r12, r13, r14, r15   uint64
	rip, rflags                            uint64
}

// segment is struct kvm_segment.
type segment struct {
	base                                uint64
	limit                               uint32
	selector                            uint16
	typ, present, dpl, db, s, l, g, avl uint8
	unusable, padding                   uint8
}

// dtable is struct kvm_dtable.
type dtable struct {
	base    uint64
	limit   uint16
	padding [3]uint16
}

// sregs is struct kvm_sregs (x86).
type sregs struct {
	cs, ds, es, fs, gs, ss, tr, ldt     segment
	gdt, idt                            dtable
	cr0, cr2, cr3, cr4, cr8, efer, apic uint64
	interruptBitmap                     [4]uint64
}

// The exit reasons of struct kvm_run that the probe names (KVM_EXIT_*).
const (
	exitUnknown       = 0
	exitException     = 1
	exitIO            = 2
	exitHLT           = 5
	exitMMIO          = 6
	exitShutdown      = 8
	exitFailEntry     = 9
	exitInternalError = 17

	exitIOOut = 1 // KVM_EXIT_IO_OUT
)

// Offsets in struct kvm_run (linux/kvm.h; checked by the test).
const (
	runExitReason = 8  // __u32 exit_reason
	runUnion      = 32 // the exit's union: io, fail_entry, internal
	runIODir      = runUnion + 0
	runIOSize     = runUnion + 1
	runIOPort     = runUnion + 2
	runIOCount    = runUnion + 4
	runIODataOff  = runUnion + 8
)

// runGuest runs the test guest in this process and says what happened.
// A KVM_RUN that never returns makes it never return: only the probe's
// child calls it.
func runGuest(dev string) Verdict {
	start := time.Now()
	if err := guest(dev); err != nil {
		return tcg("no test guest runs under %s: %v", dev, err)
	}
	return Verdict{Accel: AccelKVM, Reason: fmt.Sprintf(
		"a test guest ran: its vCPU wrote %#x to port %#x and halted, %s after opening %s",
		guestValue, guestPort, time.Since(start).Round(time.Microsecond), dev)}
}

// guest creates a VM with the test guest and runs its vCPU to the out
// and then to the hlt.
func guest(dev string) error {
	// vCPU ioctls belong on the thread that created the vCPU
	// (Documentation/virt/kvm/api.rst, "General description").
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// The guest memory first, so that it is unmapped after the VM is
	// closed.
	mem, err := unix.Mmap(-1, 0, guestMem, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("map the guest memory: %w", err)
	}
	defer func() { _ = unix.Munmap(mem) }()
	copy(mem, guestCode)

	sys, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dev, Err: err}
	}
	defer func() { _ = unix.Close(sys) }()
	if v, err := ioctl(sys, kvmGetAPIVersion, "KVM_GET_API_VERSION"); err != nil {
		return err
	} else if v != kvmAPIVersion {
		return fmt.Errorf("KVM API version %d, want %d", v, kvmAPIVersion)
	}
	vm, err := ioctl(sys, kvmCreateVM, "KVM_CREATE_VM")
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(vm) }()
	region := userspaceMemoryRegion{
		guestPhysAddr: guestAddr,
		memorySize:    guestMem,
		userspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), //nolint:gosec // G103: the address of the mmap'd guest memory, which the Go runtime does not move or free, for the kernel
	}
	if err := ioctlPtr(vm, kvmSetUserMemoryRegion, &region, "KVM_SET_USER_MEMORY_REGION"); err != nil {
		return err
	}
	vcpu, err := ioctl(vm, kvmCreateVCPU, "KVM_CREATE_VCPU")
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(vcpu) }()
	size, err := ioctl(sys, kvmGetVCPUMmapSize, "KVM_GET_VCPU_MMAP_SIZE")
	if err != nil {
		return err
	}
	if size < runIODataOff+8 {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %d bytes, too small for struct kvm_run", size)
	}
	run, err := unix.Mmap(vcpu, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map the vCPU's kvm_run: %w", err)
	}
	defer func() { _ = unix.Munmap(run) }()

	// Real mode, code segment at 0, instruction pointer at the code.
	var sr sregs
	if err := ioctlPtr(vcpu, kvmGetSregs, &sr, "KVM_GET_SREGS"); err != nil {
		return err
	}
	sr.cs.base, sr.cs.selector = 0, 0
	if err := ioctlPtr(vcpu, kvmSetSregs, &sr, "KVM_SET_SREGS"); err != nil {
		return err
	}
	r := regs{rip: guestAddr, rflags: 0x2} // bit 1 of RFLAGS is always set
	if err := ioctlPtr(vcpu, kvmSetRegs, &r, "KVM_SET_REGS"); err != nil {
		return err
	}

	if err := runVCPU(vcpu); err != nil {
		return err
	}
	if err := checkOut(run); err != nil {
		return err
	}
	if err := runVCPU(vcpu); err != nil {
		return err
	}
	if reason := exitReason(run); reason != exitHLT {
		return fmt.Errorf("after the out, KVM_RUN exited with %s, want HLT", describeExit(run))
	}
	return nil
}

// runVCPU runs the vCPU until its next exit. A signal (the Go runtime's
// preemption, say) interrupts KVM_RUN with EINTR: the vCPU goes on.
func runVCPU(vcpu int) error {
	for {
		_, err := ioctl(vcpu, kvmRun, "KVM_RUN")
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// checkOut checks that the exit in run is the guest's out of guestValue
// to guestPort.
func checkOut(run []byte) error {
	if exitReason(run) != exitIO {
		return fmt.Errorf("KVM_RUN exited with %s, want the guest's IO out to port %#x", describeExit(run), guestPort)
	}
	le := binary.LittleEndian
	dir, size, port, count := run[runIODir], run[runIOSize], le.Uint16(run[runIOPort:]), le.Uint32(run[runIOCount:])
	off := le.Uint64(run[runIODataOff:])
	if dir != exitIOOut || size != 1 || port != guestPort || count != 1 || off >= uint64(len(run)) {
		return fmt.Errorf("KVM_RUN exited with %s, want an out of 1 byte to port %#x", describeExit(run), guestPort)
	}
	if v := run[off]; v != guestValue {
		return fmt.Errorf("the guest wrote %#x to port %#x, want %#x", v, port, guestValue)
	}
	return nil
}

func exitReason(run []byte) uint32 { return binary.LittleEndian.Uint32(run[runExitReason:]) }

// describeExit names the exit in run, with the details a failed probe
// should report.
func describeExit(run []byte) string {
	le := binary.LittleEndian
	switch r := exitReason(run); r {
	case exitIO:
		dir := "in"
		if run[runIODir] == exitIOOut {
			dir = "out"
		}
		return fmt.Sprintf("IO (%s, port %#x, size %d, count %d)", dir, le.Uint16(run[runIOPort:]), run[runIOSize], le.Uint32(run[runIOCount:]))
	case exitHLT:
		return "HLT"
	case exitFailEntry:
		return fmt.Sprintf("FAIL_ENTRY (hardware entry failure reason %#x): the vCPU could not enter the guest", le.Uint64(run[runUnion:]))
	case exitInternalError:
		return fmt.Sprintf("INTERNAL_ERROR (suberror %d)", le.Uint32(run[runUnion:]))
	case exitShutdown:
		return "SHUTDOWN (triple fault)"
	case exitMMIO:
		return "MMIO"
	case exitException:
		return "EXCEPTION"
	case exitUnknown:
		return fmt.Sprintf("UNKNOWN (hardware exit reason %#x)", le.Uint64(run[runUnion:]))
	default:
		return fmt.Sprintf("exit reason %d", r)
	}
}

// ioctl calls an ioctl without an argument and returns its result,
// retrying on EINTR except for KVM_RUN (whose caller decides); the error
// names the request.
func ioctl(fd int, req uintptr, name string) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, 0)
		switch {
		case errno == unix.EINTR && req != kvmRun:
			continue
		case errno != 0:
			return -1, os.NewSyscallError("ioctl "+name, errno)
		}
		return int(r), nil
	}
}

// ioctlPtr calls an ioctl whose argument is a pointer to the struct arg,
// retrying on EINTR.
func ioctlPtr[T any](fd int, req uintptr, arg *T, name string) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(arg))) //nolint:gosec // G103: a struct of the kernel's layout, converted in the call as unsafe.Pointer's rule (4) allows
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return os.NewSyscallError("ioctl "+name, errno)
		}
		return nil
	}
}
