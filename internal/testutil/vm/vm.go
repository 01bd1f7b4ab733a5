package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nosecone/nscn/internal/kvm"
)

// File is one host file the initramfs carries.
type File struct {
	Src string // path on the host
	Dst string // absolute path in the VM
	// Mode is the file's permissions in the VM (default: those of Src).
	Mode fs.FileMode
}

// Config describes the VM. Kernel, Busybox and Init are required.
type Config struct {
	// Kernel is the directory scripts/vm/fetch-kernel.sh made: vmlinuz,
	// modules/*.ko and modules.order.
	Kernel string
	// Busybox is a static busybox binary; it becomes /bin/busybox and,
	// through its applets, every command of the VM's root.
	Busybox string
	// Init is the VM's /init, scripts/vm/init.sh.
	Init string
	// Files are added as they are (nscn, stage1 images, test images).
	Files []File
	// CacheDir holds the base initramfs, named by the hash of its
	// content (default: the user's cache directory). Older ones are
	// removed when a new one is written.
	CacheDir string
	// Qemu is the qemu-system-x86_64 binary (default: found on PATH).
	Qemu string
	// MemoryMiB and CPUs size the VM (defaults 2048 and 2).
	MemoryMiB, CPUs int
	// Accel is "kvm", "tcg" or "". Empty (the default) asks kvm.Probe,
	// once per Machine: KVM only where a test guest really runs, TCG
	// everywhere else. "kvm" and "tcg" are used as they are, unprobed.
	// A binary that leaves it empty calls kvm.ProbeChild first in its
	// main or TestMain.
	Accel string
}

// Script is one shell script the VM runs, as /test/NAME.sh under busybox
// sh, in the order given.
type Script struct {
	Name string // letters, digits, '-', '_' and '.'
	Body string
}

// Result is what one script did.
type Result struct {
	Name   string
	Output string // stdout and stderr, interleaved as written
	Status int    // exit status
}

// Run is one boot's outcome.
type Run struct {
	Results []Result
	// Serial is the whole console output, with \r removed.
	Serial string
	// Boot is the VM's uptime when its init was ready to run the
	// scripts (kernel and init, without qemu's own start), and Wall the
	// time from starting qemu until it exited.
	Boot, Wall time.Duration
	// Accel is the accelerator qemu ran with, "kvm" or "tcg", and
	// AccelReason why: what kvm.Probe found, or that Config.Accel set it.
	Accel, AccelReason string
}

// Result returns the result of the script called name.
func (r *Run) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Tail returns the last n lines of the console output, for test logs.
func (r *Run) Tail(n int) string { return tail(r.Serial, n) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// BootError is returned when the VM did not run all scripts to the end
// (qemu failed, the init failed, or the time ran out). Serial is the
// console output so far.
type BootError struct {
	Err    error
	Serial string
}

func (e *BootError) Error() string {
	return fmt.Sprintf("%v; console tail:\n%s", e.Err, tail(e.Serial, 40))
}

func (e *BootError) Unwrap() error { return e.Err }

// Machine boots VMs of one Config; it builds the base initramfs and
// chooses the accelerator once.
type Machine struct {
	cfg  Config
	once sync.Once
	base string
	err  error

	probe     func(context.Context) kvm.Verdict // kvm.Probe, or a test's
	accelOnce sync.Once
	accel     kvm.Verdict
}

// New checks cfg and returns a Machine; nothing is built or booted yet.
func New(cfg Config) (*Machine, error) {
	for name, p := range map[string]string{"kernel directory": cfg.Kernel, "busybox": cfg.Busybox, "init script": cfg.Init} {
		if p == "" {
			return nil, fmt.Errorf("vm: no %s configured", name)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Kernel, "vmlinuz")); err != nil {
		return nil, fmt.Errorf("vm: kernel (run scripts/vm/fetch-kernel.sh): %w", err)
	}
	if err := checkStatic(cfg.Busybox); err != nil {
		return nil, err
	}
	if cfg.Qemu == "" {
		q, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			return nil, fmt.Errorf("vm: qemu-system-x86_64 (package qemu-system-x86): %w", err)
		}
		cfg.Qemu = q
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 2048
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("vm: cache directory: %w", err)
		}
		cfg.CacheDir = filepath.Join(d, "nscn-vm")
	}
	switch cfg.Accel {
	case "", "kvm", "tcg":
	default:
		return nil, fmt.Errorf("vm: accelerator %q: want kvm, tcg or empty", cfg.Accel)
	}
	return &Machine{cfg: cfg, probe: kvm.Probe}, nil
}

// checkStatic fails unless the ELF binary p has no program interpreter:
// the VM has no dynamic loader or libraries.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("vm: busybox: %w", err)
	}
	defer func() { _ = f.Close() }()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("vm: busybox %s is dynamically linked; the VM needs a static one (package busybox-static)", p)
		}
	}
	return nil
}

// baseEntries lists the base initramfs's content in a fixed order: the
// hash of the list, with each file's content, names the cached archive.
func (m *Machine) baseEntries() ([]File, error) {
	files := []File{
		{Src: m.cfg.Init, Dst: "/init", Mode: 0o755},
		{Src: m.cfg.Busybox, Dst: "/bin/busybox", Mode: 0o755},
	}
	order := filepath.Join(m.cfg.Kernel, "modules.order")
	if data, err := os.ReadFile(order); err == nil { //nolint:gosec // G304: a file of the kernel directory the configuration names
		files = append(files, File{Src: order, Dst: "/lib/modules/modules.order"})
		for mod := range strings.FieldsSeq(string(data)) {
			files = append(files, File{Src: filepath.Join(m.cfg.Kernel, "modules", mod), Dst: "/lib/modules/" + mod})
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vm: %w", err)
	}
	return append(files, m.cfg.Files...), nil
}

// hashFiles hashes the names, permissions and contents of files.
func hashFiles(files []File) (string, error) {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "nscn-vm initramfs v1\n")
	for _, f := range files {
		fi, err := os.Stat(f.Src)
		if err != nil {
			return "", fmt.Errorf("vm: %w", err)
		}
		_, _ = fmt.Fprintf(h, "%s %o %o %d\n", f.Dst, f.Mode, fi.Mode().Perm(), fi.Size())
		r, err := os.Open(f.Src)
		if err != nil {
			return "", fmt.Errorf("vm: %w", err)
		}
		_, err = io.Copy(h, r)
		_ = r.Close()
		if err != nil {
			return "", fmt.Errorf("vm: hash %s: %w", f.Src, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// Initramfs returns the path of the base initramfs, writing it into the
// cache directory unless an archive of the same content is there.
func (m *Machine) Initramfs() (string, error) {
	m.once.Do(func() { m.base, m.err = m.initramfs() })
	return m.base, m.err
}

func (m *Machine) initramfs() (string, error) {
	files, err := m.baseEntries()
	if err != nil {
		return "", err
	}
	key, err := hashFiles(files)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(m.cfg.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	p := filepath.Join(m.cfg.CacheDir, "initramfs-"+key+".cpio")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	tmp, err := os.CreateTemp(m.cfg.CacheDir, ".initramfs-*")
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	w := newCPIOWriter(tmp, 0)
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/root", "/etc", "/var/lib"} {
		if err := w.Dir(d, 0o755); err != nil {
			return "", fmt.Errorf("vm: write initramfs: %w", err)
		}
	}
	// The kernel opens /dev/console for init's stdio before any devtmpfs
	// is mounted.
	if err := w.CharDev("/dev/console", 0o600, 5, 1); err != nil {
		return "", fmt.Errorf("vm: write initramfs: %w", err)
	}
	if err := w.Symlink("/bin/sh", "busybox"); err != nil {
		return "", fmt.Errorf("vm: write initramfs: %w", err)
	}
	for _, f := range files {
		if err := w.File(f.Dst, f.Src, f.Mode); err != nil {
			return "", fmt.Errorf("vm: write initramfs: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("vm: write initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("vm: write initramfs: %w", err)
	}
	// Older archives are of older builds.
	old, _ := filepath.Glob(filepath.Join(m.cfg.CacheDir, "initramfs-*.cpio"))
	for _, o := range old {
		_ = os.Remove(o)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	return p, nil
}

// validName reports whether a script name is safe as a file name and on
// a marker line.
func validName(s string) bool {
	if s == "" || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '_' && r != '.' {
			return false
		}
	}
	return true
}

// writeInitrd writes to path the base archive followed by one with the
// scripts, /test/NNN-NAME.sh (numbered, since the init runs them in name
// order; the init strips nothing, so results are matched by that name).
func writeInitrd(path, base string, scripts []Script) (names []string, err error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: the boot's own initrd in its scratch directory, created with O_EXCL
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("vm: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	in, err := os.Open(base) //nolint:gosec // G304: the base initramfs in the cache directory, which Initramfs wrote
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer func() { _ = in.Close() }()
	if _, err := io.Copy(out, in); err != nil {
		return nil, fmt.Errorf("vm: copy the base initramfs: %w", err)
	}
	// Inode numbers far from the base archive's.
	w := newCPIOWriter(out, 1<<24)
	seen := map[string]bool{}
	for i, s := range scripts {
		if !validName(s.Name) || seen[s.Name] {
			return nil, fmt.Errorf("vm: script name %q: empty, repeated, or not made of letters, digits, '-', '_' and '.'", s.Name)
		}
		seen[s.Name] = true
		name := fmt.Sprintf("%03d-%s", i, s.Name)
		names = append(names, name)
		if err := w.Bytes("/test/"+name+".sh", 0o755, []byte(s.Body)); err != nil {
			return nil, fmt.Errorf("vm: write scripts: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("vm: write scripts: %w", err)
	}
	return names, nil
}

// Accel returns the accelerator the VMs run with and why: Config.Accel,
// or else what kvm.Probe finds, probed at the first call.
func (m *Machine) Accel(ctx context.Context) kvm.Verdict {
	m.accelOnce.Do(func() {
		switch kvm.Accel(m.cfg.Accel) {
		case kvm.AccelKVM, kvm.AccelTCG:
			m.accel = kvm.Verdict{Accel: kvm.Accel(m.cfg.Accel), Reason: "set by Config.Accel (NSCN_VM_ACCEL under make vm-test), not probed"}
		default:
			if v, ok := kvmFailedKernel(); ok {
				m.accel = v
				return
			}
			m.accel = m.probe(ctx)
		}
	})
	return m.accel
}

// A host whose KVM runs kvm.Probe's test guest can still fail a real
// kernel (a nested host's KVM that cannot emulate an instruction the
// kernel runs early, lock cmpxchg16b). Once a boot saw that, every later
// Machine of this process boots under TCG without trying KVM again.
var (
	kvmBrokenMu sync.Mutex
	kvmBroken   string // the reason, "" while KVM has not failed a boot
)

func kvmFailedKernel() (kvm.Verdict, bool) {
	kvmBrokenMu.Lock()
	defer kvmBrokenMu.Unlock()
	if kvmBroken == "" {
		return kvm.Verdict{}, false
	}
	return kvm.Verdict{Accel: kvm.AccelTCG, Reason: kvmBroken}, true
}

// fallBackToTCG records that KVM failed a kernel and makes m use TCG.
func (m *Machine) fallBackToTCG(why string) {
	kvmBrokenMu.Lock()
	kvmBroken = "KVM ran the probe's test guest but failed the kernel (" + why + "): TCG"
	m.accel = kvm.Verdict{Accel: kvm.AccelTCG, Reason: kvmBroken}
	kvmBrokenMu.Unlock()
}

// kvmInitTimeout bounds, under KVM, the wait for the init's first line:
// a KVM boot reaches it in seconds, and a host whose KVM hangs the kernel
// shows nothing at all.
const kvmInitTimeout = 20 * time.Second

// markInit is the init's first line (scripts/vm/init.sh).
const markInit = "@@nscn-vm init"

// accelArgs returns qemu's accelerator and CPU flags. KVM comes without
// TCG as a fallback: where KVM starts but does not run guests, a fallback
// would not be taken anyway, and a probed KVM has run one.
func accelArgs(a kvm.Accel) []string {
	return []string{"-accel", string(a), "-cpu", "max"}
}

// Boot boots the VM with scripts, waits until it powers off or ctx ends,
// and returns each script's result. dir is a scratch directory for the
// boot's initrd; serial, if not nil, receives the console output as it
// comes. An error of type *BootError carries the console output.
func (m *Machine) Boot(ctx context.Context, dir string, serial io.Writer, scripts []Script) (*Run, error) {
	base, err := m.Initramfs()
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	names, err := writeInitrd(initrd, base, scripts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(initrd) }()
	accel := m.Accel(ctx)
	run, err := m.boot(ctx, initrd, accel, serial, names, scripts)
	var kf *kvmFailure
	if errors.As(err, &kf) {
		m.fallBackToTCG(kf.msg)
		if serial != nil {
			_, _ = fmt.Fprintf(serial, "\n[vm: %s; booting again under TCG]\n", kf.msg)
		}
		return m.boot(ctx, initrd, m.accel, serial, names, scripts)
	}
	return run, err
}

// kvmFailure is a boot that qemu stopped on a KVM internal error.
type kvmFailure struct{ msg string }

func (k *kvmFailure) Error() string { return "vm: " + k.msg }

// boot is one boot of Boot's under accel.
func (m *Machine) boot(ctx context.Context, initrd string, accel kvm.Verdict, serial io.Writer, names []string, scripts []Script) (*Run, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var kvmFailed atomic.Bool
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-nic", "none", "-no-reboot",
		"-m", fmt.Sprint(m.cfg.MemoryMiB), "-smp", fmt.Sprint(m.cfg.CPUs),
	}
	args = append(args, accelArgs(accel.Accel)...)
	args = append(args,
		"-kernel", filepath.Join(m.cfg.Kernel, "vmlinuz"),
		"-initrd", initrd,
		// init= as well as the initramfs's /init: if /init cannot run,
		// the kernel panics (and the VM ends) instead of starting a
		// shell that waits for the timeout.
		"-append", "console=ttyS0 panic=-1 quiet init=/init",
	)
	cmd := exec.CommandContext(ctx, m.cfg.Qemu, args...) //nolint:gosec // G204: the configured qemu, argv built here
	var console bytes.Buffer
	var stdout io.Writer = &console
	if serial != nil {
		stdout = io.MultiWriter(&console, serial)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	var kvmWhy atomic.Value // string: why KVM was given up
	if accel.Accel == kvm.AccelKVM {
		fail := func(why string) {
			if kvmFailed.CompareAndSwap(false, true) {
				kvmWhy.Store(why)
				cancel()
			}
		}
		cmd.Stderr = kvm.Watch(&stderr, kvm.InternalError, func() { fail("") })
		// The init's first line, or KVM does not run this kernel.
		started := make(chan struct{})
		cmd.Stdout = kvm.Watch(stdout, markInit, func() { close(started) })
		go func() {
			select {
			case <-started:
			case <-ctx.Done():
			case <-time.After(kvmInitTimeout):
				fail(fmt.Sprintf("no %q on the console %s after qemu started", markInit, kvmInitTimeout))
			}
		}()
	}
	// qemu leads a process group of its own, so that a timeout kills
	// all of it; it dies with this process (Pdeathsig, sent when the
	// thread that started it exits, which in Go is at the process's
	// exit: a runtime thread ends only with a goroutine locked to it),
	// and not, as before, orphaned to PID 1 when the test binary's
	// timeout ends it. Run waits for it in every case.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	run, perr := parseConsole(console.String())
	run.Wall, run.Accel, run.AccelReason = wall, string(accel.Accel), accel.Reason
	switch {
	case kvmFailed.Load():
		if why, _ := kvmWhy.Load().(string); why != "" {
			return run, &kvmFailure{msg: why}
		}
		msg := stderr.String()
		if i := strings.Index(msg, kvm.InternalError); i >= 0 {
			msg = msg[i:]
		}
		line, _, _ := strings.Cut(msg, "\n")
		return run, &kvmFailure{msg: strings.TrimSpace(line)}
	case ctx.Err() != nil:
		return run, &BootError{Err: fmt.Errorf("vm: no poweroff after %s: %w", wall.Round(time.Second), ctx.Err()), Serial: run.Serial}
	case err != nil:
		return run, &BootError{Err: fmt.Errorf("vm: qemu: %w: %s", err, strings.TrimSpace(stderr.String())), Serial: run.Serial}
	case perr != nil:
		return run, &BootError{Err: perr, Serial: run.Serial}
	}
	// Results by the caller's names, in the caller's order.
	for i := range run.Results {
		if j := slices.Index(names, run.Results[i].Name); j >= 0 {
			run.Results[i].Name = scripts[j].Name
		}
	}
	if len(run.Results) != len(scripts) {
		return run, &BootError{Err: fmt.Errorf("vm: %d of %d scripts reported", len(run.Results), len(scripts)), Serial: run.Serial}
	}
	return run, nil
}
