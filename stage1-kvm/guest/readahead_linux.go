package guest

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// RootReadaheadKiB is the read-ahead Init gives the guest's virtio-fs root
// (the kernel's default is 128 KiB).
//
// Why: virtiofsd runs with cache=auto, under which every open of a file
// drops the guest's cached pages of it, so each exec of an app's binary
// (and of the app helper) reads again from the host every page it runs,
// one page fault and one round trip to virtiofsd per 128 KiB. Under
// emulation (TCG) on a loaded host such a fault took 10 to 50 ms: the
// first HTTP request of a Go program, whose net/http code had not run yet,
// took 6 to 9 of them, over the 100 ms appc's ACE validator gives a
// metadata request (stage1-kvm/README.md, "Metadata service"). With a
// larger read-ahead each fault brings in a larger part of the binary.
const RootReadaheadKiB = 4096

// setReadahead sets the read-ahead of the file system mounted at dir to
// kib KiB, through its backing device's read_ahead_kb in sysfs (which
// must be mounted at /sys). The submounts virtio-fs announces share the
// root's backing device.
func setReadahead(dir string, kib int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(kib)), 0); err != nil {
		return fmt.Errorf("set the read-ahead of %s: %w", dir, err)
	}
	return nil
}
