package entrypoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nosecone/nscn/internal/atomicfile"
	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/stage1-kvm/guest"
	"github.com/nosecone/nscn/stage1-kvm/hypervisor"
)

// A KVM that runs kvm.Probe's test guest can still fail the flavor's
// kernel: on some nested hosts the kernel hangs right after its
// decompressor, or qemu stops it on a "KVM internal error". So before the
// first pod under KVM, run boots the kernel and initramfs to the boot
// marker under KVM, and takes TCG when the marker does not come. The
// verdict is kept for the host's uptime in verdictDir (a tmpfs), keyed by
// the kernel, so that only the first pod pays the check: about a second
// where KVM works, bootCheckTimeout where it does not.
const (
	verdictDir       = "/run/nscn/kvm"
	bootCheckTimeout = 20 * time.Second
)

// accelerator is KVM when a guest really runs the flavor's kernel here,
// else TCG. NSCN_VM_ACCEL=kvm or tcg forces one, as for make vm-test.
func accelerator(ctx context.Context, img image) kvm.Verdict {
	switch a := os.Getenv("NSCN_VM_ACCEL"); a {
	case string(kvm.AccelKVM), string(kvm.AccelTCG):
		return kvm.Verdict{Accel: kvm.Accel(a), Reason: "NSCN_VM_ACCEL=" + a}
	}
	cache := verdictFile(img.Kernel)
	if b, err := os.ReadFile(cache); err == nil { //nolint:gosec // G304: run's own cache file under /run
		var v kvm.Verdict
		if json.Unmarshal(b, &v) == nil && (v.Accel == kvm.AccelKVM || v.Accel == kvm.AccelTCG) {
			v.Reason += " (checked earlier, " + cache + ")"
			return v
		}
	}
	v := kvm.Probe(ctx)
	if v.Accel == kvm.AccelKVM {
		if err := bootCheck(ctx, img); err != nil {
			v = kvm.Verdict{Accel: kvm.AccelTCG, Reason: "KVM runs the probe's test guest but not this kernel: " + err.Error()}
		} else {
			v.Reason += "; the kernel boots under KVM"
		}
	}
	if ctx.Err() == nil {
		if b, err := json.Marshal(v); err == nil && os.MkdirAll(verdictDir, 0o755) == nil {
			// Best effort: without the cache the next pod checks again.
			_ = atomicfile.Write(verdictDir, filepath.Base(cache), b)
		}
	}
	return v
}

// verdictFile is the cache file of the verdict for kernel: named by its
// path, size and modification time, so a new kernel is checked again.
func verdictFile(kernel string) string {
	key := kernel
	if st, err := os.Stat(kernel); err == nil {
		key = fmt.Sprintf("%s %d %d", kernel, st.Size(), st.ModTime().UnixNano())
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(verdictDir, "accel-"+hex.EncodeToString(sum[:8])+".json")
}

// bootCheck boots img's kernel and initramfs under KVM to the boot marker
// and fails when the marker does not reach the console in time.
func bootCheck(ctx context.Context, img image) error {
	dir, err := os.MkdirTemp("", "nscn-kvm-check-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	console := filepath.Join(dir, "console")
	ctx, cancel := context.WithTimeout(ctx, bootCheckTimeout)
	defer cancel()
	argv := hypervisor.BootArgv(img.QEMU, img.Kernel, img.Initrd, console, kvm.AccelKVM)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // G204: the image's qemu, argv built here
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	runErr := cmd.Run()
	out, _ := os.ReadFile(console) //nolint:gosec // G304: the check's own console file
	switch {
	case bytes.Contains(out, []byte(guest.BootMarker)):
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("no %q on the console %s after qemu started%s", guest.BootMarker, time.Since(start).Round(time.Second), qemuSays(stderr.Bytes()))
	case runErr != nil:
		return fmt.Errorf("qemu ended without %q: %w%s", guest.BootMarker, runErr, qemuSays(stderr.Bytes()))
	default:
		return fmt.Errorf("qemu exited without %q%s", guest.BootMarker, qemuSays(stderr.Bytes()))
	}
}

// qemuSays is qemu's first stderr line, for an error message.
func qemuSays(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	if len(line) == 0 {
		return ""
	}
	return ": qemu: " + string(line)
}
