// Command guest-init is /init of the kvm flavor's initramfs: the guest
// kernel's first process (see package guest). On failure it says why on
// the console and powers the guest off, which ends qemu.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/stage1-kvm/guest"
)

func main() {
	err := guest.Init(os.Stdout)
	if !errors.Is(err, guest.ErrBootMarker) {
		_, _ = fmt.Fprintln(os.Stdout, "nscn-guest: init failed:", err)
		time.Sleep(100 * time.Millisecond)
	}
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	os.Exit(1) //nolint:forbidigo // main: pid 1's end panics the kernel, which ends qemu (panic=-1)
}
