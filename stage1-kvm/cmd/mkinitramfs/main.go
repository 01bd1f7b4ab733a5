// Command mkinitramfs writes the kvm flavor's initramfs (a build tool of
// scripts/build-stage1-kvm.sh, not part of the image): the static guest
// init as /init and the kernel modules a kernel directory of
// scripts/vm/fetch-kernel.sh keeps, with their load order.
//
// Usage: mkinitramfs OUT INIT KERNELDIR
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosecone/nscn/stage1-kvm/guest"
	"github.com/nosecone/nscn/stage1-kvm/initramfs"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: mkinitramfs OUT INIT KERNELDIR")
		os.Exit(2) //nolint:forbidigo // main
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1) //nolint:forbidigo // main
	}
}

func run(out, initBin, kernelDir string) error {
	init, err := os.ReadFile(initBin) //nolint:gosec // G304: a build input
	if err != nil {
		return err
	}
	order, err := os.ReadFile(filepath.Join(kernelDir, "modules.order")) //nolint:gosec // G304: a build input
	if err != nil {
		return err
	}
	entries := []initramfs.Entry{
		{Name: "init", Mode: 0o755, Data: init},
		{Name: "dev", Mode: 0o755, Dir: true},
		{Name: "proc", Mode: 0o755, Dir: true},
		{Name: "sys", Mode: 0o755, Dir: true},
		{Name: strings.TrimPrefix(guest.ModuleOrder, "/"), Mode: 0o644, Data: order},
	}
	for _, m := range strings.Fields(string(order)) {
		b, err := os.ReadFile(filepath.Join(kernelDir, "modules", m)) //nolint:gosec // G304: a build input
		if err != nil {
			return err
		}
		entries = append(entries, initramfs.Entry{Name: strings.TrimPrefix(guest.ModuleDir, "/") + "/" + m, Mode: 0o644, Data: b})
	}
	var buf bytes.Buffer
	if err := initramfs.Write(&buf, entries); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644) //nolint:gosec // G306: an image file, world-readable like the rest of the stage1
}
