package apphelper

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/testutil"
)

// TestPrivatePTMXIsNobodysElse: the terminal privatePTMX opens is in a
// devpts instance that the caller's /dev/pts does not show: its number
// there is another terminal's, or none.
func TestPrivatePTMXIsNobodysElse(t *testing.T) {
	testutil.RequiresRoot(t)
	fd, err := privatePTMX()
	if err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	defer func() { _ = master.Close() }()
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var perr error
	if err := rc.Control(func(fd uintptr) {
		if perr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); perr == nil {
			n, perr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	var mine, there unix.Stat_t
	if err := rc.Control(func(fd uintptr) {
		sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
		if errno != 0 {
			perr = errno
			return
		}
		perr = unix.Fstat(int(sfd), &mine)
		_ = unix.Close(int(sfd))
	}); err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	if err := unix.Stat("/dev/pts/"+strconv.Itoa(n), &there); err == nil && there.Rdev == mine.Rdev && there.Dev == mine.Dev {
		t.Fatalf("the private terminal %d is /dev/pts/%d of the caller's devpts", n, n)
	}
}
