package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// roleEnv makes the test binary a stand-in for the probe's child
// (TestMain), and pidFileEnv is where the "hang" role writes its pid.
const (
	roleEnv    = "NSCN_KVM_TEST_ROLE"
	pidFileEnv = "NSCN_KVM_TEST_PIDFILE"
)

func TestMain(m *testing.M) {
	if ProbeChild() {
		return // the exit status is 0: m.Run did not run
	}
	switch os.Getenv(roleEnv) {
	case "":
	case "hang":
		// A KVM_RUN that never returns, as far as the parent can tell.
		if err := os.WriteFile(os.Getenv(pidFileEnv), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil { //nolint:gosec // G703: the pid file the parent test named
			fmt.Fprintln(os.Stderr, err)
		}
		for {
			time.Sleep(time.Hour)
		}
	case "kvm":
		fmt.Println(`{"accel":"kvm","reason":"a stand-in guest ran"}`)
		return
	case "tcg":
		fmt.Println(`{"accel":"tcg","reason":"ioctl KVM_RUN: stand-in failure"}`)
		return
	case "garbage":
		fmt.Println("usage: whatever this binary's main prints")
		return
	case "crash":
		fmt.Fprintln(os.Stderr, "an early line, left out\ngoroutine 1 [running]:\nmain.main()\npanic: stand-in crash")
		os.Exit(2) //nolint:forbidigo // TestMain is the test binary's main: the stand-in child's failure
	}
	m.Run()
}

// TestKernelABI checks the ioctl numbers, struct sizes and kvm_run
// offsets against linux/kvm.h for x86-64 (the values a C program built
// against the header prints).
func TestKernelABI(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{name: "KVM_GET_API_VERSION", got: kvmGetAPIVersion, want: 0xae00},
		{name: "KVM_CREATE_VM", got: kvmCreateVM, want: 0xae01},
		{name: "KVM_GET_VCPU_MMAP_SIZE", got: kvmGetVCPUMmapSize, want: 0xae04},
		{name: "KVM_CREATE_VCPU", got: kvmCreateVCPU, want: 0xae41},
		{name: "KVM_SET_USER_MEMORY_REGION", got: kvmSetUserMemoryRegion, want: 0x4020ae46},
		{name: "KVM_RUN", got: kvmRun, want: 0xae80},
		{name: "KVM_SET_REGS", got: kvmSetRegs, want: 0x4090ae82},
		{name: "KVM_GET_SREGS", got: kvmGetSregs, want: 0x8138ae83},
		{name: "KVM_SET_SREGS", got: kvmSetSregs, want: 0x4138ae84},
		{name: "sizeof kvm_regs", got: unsafe.Sizeof(regs{}), want: 144},
		{name: "sizeof kvm_sregs", got: unsafe.Sizeof(sregs{}), want: 312},
		{name: "sizeof kvm_segment", got: unsafe.Sizeof(segment{}), want: 24},
		{name: "sizeof kvm_dtable", got: unsafe.Sizeof(dtable{}), want: 16},
		{name: "sizeof kvm_userspace_memory_region", got: unsafe.Sizeof(userspaceMemoryRegion{}), want: 32},
		{name: "offsetof kvm_regs.rip", got: unsafe.Offsetof(regs{}.rip), want: 128},
		{name: "offsetof kvm_regs.rflags", got: unsafe.Offsetof(regs{}.rflags), want: 136},
		{name: "offsetof kvm_run.exit_reason", got: runExitReason, want: 8},
		{name: "offsetof kvm_run.io.port", got: runIOPort, want: 34},
		{name: "offsetof kvm_run.io.count", got: runIOCount, want: 36},
		{name: "offsetof kvm_run.io.data_offset", got: runIODataOff, want: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%#x, want %#x", tt.got, tt.want)
			}
		})
	}
}

// exitPage is a kvm_run page whose exit is reason, with union as the
// first 8 bytes of the exit's union.
func exitPage(reason uint32, union uint64) []byte {
	run := make([]byte, 4096)
	binary.LittleEndian.PutUint32(run[runExitReason:], reason)
	binary.LittleEndian.PutUint64(run[runUnion:], union)
	return run
}

// ioPage is a kvm_run page whose exit is an IO exit (count 1) with data
// (one byte) at dataOff.
func ioPage(dir, size uint8, port uint16, dataOff uint64, data byte) []byte {
	run := exitPage(exitIO, 0)
	le := binary.LittleEndian
	run[runIODir], run[runIOSize] = dir, size
	le.PutUint16(run[runIOPort:], port)
	le.PutUint32(run[runIOCount:], 1)
	le.PutUint64(run[runIODataOff:], dataOff)
	if dataOff < uint64(len(run)) {
		run[dataOff] = data
	}
	return run
}

func TestCheckOut(t *testing.T) {
	tests := []struct {
		name string
		run  []byte
		want string // in the error; "" for none
	}{
		{name: "the guest's out", run: ioPage(exitIOOut, 1, guestPort, 512, guestValue)},
		{name: "wrong value", run: ioPage(exitIOOut, 1, guestPort, 512, 0x20), want: "wrote 0x20 to port 0xe9, want 0x2a"},
		{name: "in, not out", run: ioPage(0, 1, guestPort, 512, guestValue), want: "IO (in, port 0xe9, size 1, count 1)"},
		{name: "other port", run: ioPage(exitIOOut, 1, 0x80, 512, guestValue), want: "port 0x80"},
		{name: "two bytes", run: ioPage(exitIOOut, 2, guestPort, 512, guestValue), want: "size 2"},
		{name: "data outside the page", run: ioPage(exitIOOut, 1, guestPort, 1<<20, guestValue), want: "want an out of 1 byte"},
		{name: "halted first", run: exitPage(exitHLT, 0), want: "exited with HLT"},
		{name: "entry failed", run: exitPage(exitFailEntry, 0x80000021), want: "FAIL_ENTRY (hardware entry failure reason 0x80000021)"},
		{name: "internal error", run: exitPage(exitInternalError, 3), want: "INTERNAL_ERROR (suberror 3)"},
		{name: "triple fault", run: exitPage(exitShutdown, 0), want: "SHUTDOWN"},
		{name: "unnamed exit", run: exitPage(42, 0), want: "exit reason 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkOut(tt.run)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("checkOut: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("checkOut: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// alive reports whether a process pid exists (a zombie does not count).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestProberChildren(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 1500 * time.Millisecond
	tests := []struct {
		name       string
		role       string
		dev        string // default: a file that opens
		undispatch bool
		accel      Accel
		want       string // in the reason
	}{
		{name: "guest ran", role: "kvm", accel: AccelKVM, want: "a stand-in guest ran (probe "},
		{name: "guest failed", role: "tcg", accel: AccelTCG, want: "ioctl KVM_RUN: stand-in failure"},
		{name: "no device", role: "kvm", dev: filepath.Join(t.TempDir(), "kvm"), accel: AccelTCG, want: "does not exist: no KVM module loaded"},
		{name: "binary does not dispatch", role: "kvm", undispatch: true, accel: AccelTCG, want: "does not call kvm.ProbeChild"},
		{name: "child crashed", role: "crash", accel: AccelTCG, want: "wrote no verdict (exit status 2): goroutine 1 [running]: main.main() panic: stand-in crash"},
		{name: "child printed no verdict", role: "garbage", accel: AccelTCG, want: "wrote no verdict (exit status 0): nothing on stderr"},
		{name: "guest never finishes", role: "hang", accel: AccelTCG, want: "did not finish within 1.5s: KVM_RUN never returned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			p := prober{
				dev:        dev,
				argv:       []string{self},
				env:        append(os.Environ(), roleEnv+"="+tt.role, pidFileEnv+"="+pidFile),
				timeout:    timeout,
				reap:       time.Second,
				dispatched: !tt.undispatch,
			}
			if tt.dev != "" {
				p.dev = tt.dev
			}
			start := time.Now()
			v := p.probe(t.Context())
			took := time.Since(start)
			t.Logf("%s, after %s", v, took.Round(time.Millisecond))
			if v.Accel != tt.accel || !strings.Contains(v.Reason, tt.want) {
				t.Errorf("verdict %q, want %s with %q", v, tt.accel, tt.want)
			}
			if strings.Contains(v.Reason, "\n") {
				t.Errorf("reason %q is not one line", v.Reason)
			}
			// Promptly: the timeout and the reaping of a killed child,
			// with room for a busy machine.
			if took > timeout+time.Second {
				t.Errorf("probe took %s, want at most %s", took, timeout+time.Second)
			}
			if tt.role != "hang" {
				return
			}
			b, err := os.ReadFile(pidFile) //nolint:gosec // G304: the test's own file
			if err != nil {
				t.Fatalf("the hanging child did not write its pid: %v", err)
			}
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if alive(pid) {
				t.Errorf("the hanging child %d is still running after the probe returned", pid)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the killed child %d was not reaped (%v)", pid, err)
			}
		})
	}
}

// TestProbeHere runs the real probe on this machine: whatever it finds,
// it must answer within its timeout with one line, and say so when there
// is no /dev/kvm at all.
func TestProbeHere(t *testing.T) {
	start := time.Now()
	v := Probe(t.Context())
	took := time.Since(start)
	t.Logf("this machine: %s (after %s)", v, took.Round(time.Millisecond))
	if took > Timeout+reapTimeout+time.Second {
		t.Errorf("Probe took %s, want at most %s", took, Timeout+reapTimeout+time.Second)
	}
	if v.Reason == "" || strings.Contains(v.Reason, "\n") {
		t.Errorf("reason %q: want one line", v.Reason)
	}
	switch _, err := os.Stat(devKVM); {
	case errors.Is(err, fs.ErrNotExist):
		if v.Accel != AccelTCG || !strings.Contains(v.Reason, "/dev/kvm does not exist") {
			t.Errorf("no /dev/kvm, verdict %q; want tcg saying so", v)
		}
	case v.Accel == AccelKVM:
		if !strings.Contains(v.Reason, "wrote 0x2a to port 0xe9 and halted") {
			t.Errorf("verdict %q: want the guest's out and hlt", v)
		}
	case v.Accel != AccelTCG:
		t.Errorf("accelerator %q, want kvm or tcg", v.Accel)
	}
}

// TestChildDispatch runs the real child, through ProbeChild, even where
// the caller's /dev/kvm check would stop Probe first: its verdict must come
// back whichever it is.
func TestChildDispatch(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := prober{dev: dev, argv: []string{"/proc/self/exe", childArg}, timeout: Timeout, reap: reapTimeout, dispatched: true}
	v := p.probe(t.Context())
	t.Logf("child: %s", v)
	switch {
	case v.Accel == AccelKVM && strings.Contains(v.Reason, "a test guest ran"):
	case v.Accel == AccelTCG && strings.Contains(v.Reason, "no test guest runs under /dev/kvm"):
	default:
		t.Errorf("verdict %q: want the guest's own verdict", v)
	}
}

// TestGuestNotKVM runs the guest's ioctls on a device that is not KVM:
// the first one fails, and the reason names it.
func TestGuestNotKVM(t *testing.T) {
	v := runGuest(os.DevNull)
	want := "no test guest runs under /dev/null: ioctl KVM_GET_API_VERSION: inappropriate ioctl for device"
	if v.Accel != AccelTCG || v.Reason != want {
		t.Errorf("verdict %q, want tcg: %s", v, want)
	}
}
