package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/hostpid"
)

// askHostPID is the op hostpid:SOCKET,APP,FDS[,wait]: connect to a host
// PID spawner's socket and ask it to start APP, handing it the
// descriptors FDS names: stdio (0, 1, 2), dir (a directory of this
// root for stdin), opath (an O_PATH handle of it), four (0, 1, 2, 0),
// none, or garbage (stdio with a frame of an unknown kind). With wait,
// it prints "connected" once connected and waits for a line on stdin
// before it asks (the test moves it meanwhile). It returns "ok … pid"
// when the spawner started something, "err …: reason" otherwise.
func askHostPID(op, arg string) string {
	parts := strings.Split(arg, ",")
	if len(parts) < 3 {
		return "err " + op + ": want SOCKET,APP,FDS[,wait]"
	}
	sock, app, fds := parts[0], parts[1], parts[2]
	c, err := net.Dial("unixpacket", sock) //nolint:gosec // G704: reaching the socket it is told is the attacker's job
	if err != nil {
		return "err " + op + ": " + err.Error()
	}
	defer func() { _ = c.Close() }()
	uc := c.(*net.UnixConn) //nolint:forcetypeassert // a unixpacket connection
	if len(parts) > 3 && parts[3] == "wait" {
		fmt.Println("connected")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	}
	frame := append([]byte{byte(hostpid.KindRequest)}, app...)
	var rights []int
	switch fds {
	case "stdio":
		rights = []int{0, 1, 2}
	case "dir", "opath":
		flags := unix.O_RDONLY | unix.O_DIRECTORY
		if fds == "opath" {
			flags = unix.O_PATH
		}
		fd, err := unix.Open("/", flags, 0)
		if err != nil {
			return "err " + op + ": " + err.Error()
		}
		rights = []int{fd, 1, 2}
	case "four":
		rights = []int{0, 1, 2, 0}
	case "none":
	case "garbage":
		frame, rights = []byte("Zx"), []int{0, 1, 2}
	default:
		return "err " + op + ": unknown FDS " + fds
	}
	var oob []byte
	if len(rights) > 0 {
		oob = unix.UnixRights(rights...)
	}
	if _, _, err := uc.WriteMsgUnix(frame, oob, nil); err != nil {
		return "err " + op + ": " + err.Error()
	}
	f, err := hostpid.Receive(uc)
	if err != nil {
		return "err " + op + ": " + err.Error()
	}
	switch f.Kind {
	case hostpid.KindStarted:
		return fmt.Sprintf("ok %s started %d", op, f.PID)
	case hostpid.KindError:
		return "err " + op + ": " + f.Msg
	}
	return fmt.Sprintf("err %s: a %c frame", op, f.Kind)
}
