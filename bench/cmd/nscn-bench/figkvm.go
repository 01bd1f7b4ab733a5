package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/stage1-kvm/guest"
	"github.com/nosecone/nscn/stage1-kvm/hypervisor"
)

// kvmRuns is how many times figure 9 runs each command: a TCG boot takes
// seconds, so the figure takes fewer runs than the others (said in its
// note).
const kvmRuns = 6

// accelLine is stage1-kvm's line naming the accelerator it chose.
var accelLine = regexp.MustCompile(`(?m)stage1-kvm: accelerator=(\w+) \((.*)\)$`)

// Figure 9: nscn run of busybox /bin/true on stage1-kvm, to exit, against
// a bare qemu boot of the same kernel and initramfs to a marker.
func (b *bencher) figKvm(ctx context.Context) {
	const fig = "9. kvm run /bin/true"
	aci := filepath.Join(filepath.Dir(b.c.nscn), "stage1-kvm.aci")
	if _, err := os.Stat(aci); err != nil {
		b.r.failed(fig, fmt.Errorf("%w (make stage1-kvm)", err))
		return
	}
	dir := filepath.Join(b.l.scratch, "kvm")
	defer func() {
		if err := runQuiet(context.WithoutCancel(ctx), "sh", "-c", b.gcScript(dir)); err != nil {
			logf("collect the kvm figure's pods: %v", err)
		}
	}()
	id, err := b.fetch(ctx, dir, b.busybox)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	run := b.nscn(dir, "--insecure-options=image", "run", "--net=none", "--stage1-from-dir=stage1-kvm.aci", id, "--exec=/bin/true")
	// One run imports the stage1 and renders both trees, and says which
	// accelerator the flavor picked: the bare boot takes the same.
	out, err := exec.CommandContext(ctx, run[0], run[1:]...).CombinedOutput() //nolint:gosec // G204: the bench runs the nscn under test
	if err != nil {
		b.r.failed(fig, fmt.Errorf("%s: %w: %s", shellJoin(run), err, out))
		return
	}
	m := accelLine.FindSubmatch(out)
	if m == nil {
		b.r.failed(fig, fmt.Errorf("%s did not say which accelerator it used:\n%s", shellJoin(run), out))
		return
	}
	accel, reason := kvm.Accel(m[1]), string(m[2])
	boot, err := b.bareBoot(ctx, aci, accel)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	gc := b.gcScript(dir)
	s, err := hyperfine(ctx, b.l.scratch, kvmRuns, 0,
		command{name: "nscn-kvm", argv: run, prepare: gc},
		command{name: "qemu-bare-boot", argv: boot},
	)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	// The bare boot must have reached the flavor's /init, not failed
	// before it.
	con, err := os.ReadFile(filepath.Join(b.l.scratch, "kvm-boot", "console"))
	if err != nil {
		b.r.failed(fig, fmt.Errorf("the bare boot's console: %w", err))
		return
	}
	if !strings.Contains(string(con), guest.BootMarker) {
		b.r.failed(fig, fmt.Errorf("the bare boot never printed %q:\n%s", guest.BootMarker, con))
		return
	}
	ours, bare := s[0].median, s[1].median
	ratio := float64(ours) / float64(bare)
	b.r.add(row{figure: fig + " to exit vs a bare qemu boot (" + string(accel) + ")", ours: ms(ours), peer: ms(bare) + " qemu to /init", ratio: times(ratio), target: "≤1.50×", status: verdict(ratio <= 1.5)})
	b.r.note("9: `nscn --insecure-options=image run --net=none --stage1-from-dir=stage1-kvm.aci IMAGE-ID --exec=/bin/true`, exited pods collected before each run (untimed), against qemu booting the same kernel and initramfs (taken from the stage1 image) on the same machine type, CPU model, memory and kernel command line, with `%s` added: the flavor's /init prints `%s` and powers the guest off as soon as it runs. Accelerator: %s (%s). Medians of %d runs each, no warm-up: a boot costs seconds under TCG.", guest.BootMarkerParam, guest.BootMarker, accel, reason, kvmRuns)
	b.timelineNote(ctx, "9", gc, run)
}

// bareBoot extracts the kvm stage1's kernel, initramfs and qemu path
// into the scratch directory and returns the argv of a bare boot of them
// to the boot marker.
func (b *bencher) bareBoot(ctx context.Context, aci string, accel kvm.Accel) ([]string, error) {
	dir := filepath.Join(b.l.scratch, "kvm-boot")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := []string{"rootfs/nscn/kvm/vmlinuz", "rootfs/nscn/kvm/initramfs", "rootfs/nscn/kvm/config.json"}
	if err := runQuiet(ctx, "tar", append([]string{"-xzf", aci, "-C", dir}, files...)...); err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, files[2])) //nolint:gosec // G304: the image's file, extracted just now
	if err != nil {
		return nil, err
	}
	var c struct {
		QEMU string `json:"qemu"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", files[2], err)
	}
	if c.QEMU == "" {
		return nil, fmt.Errorf("%s names no qemu", files[2])
	}
	return hypervisor.BootArgv(c.QEMU, filepath.Join(dir, files[0]), filepath.Join(dir, files[1]), filepath.Join(dir, "console"), accel), nil
}
