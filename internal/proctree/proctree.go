// Package proctree reads a process's children from procfs: the one
// question stage0 (a pod's pid) and the stage1s (the pod's init under
// systemd-nspawn, virtiofsd's sandbox child) ask of the process tree.
package proctree

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Children returns the pids of the children of process pid, from
// /proc/PID/task/TID/children of each of its threads (proc(5)): a child
// is listed under the thread that forked it, so a multi-threaded parent,
// a Go program, can list it under any of them. A process that is not
// running is an error wrapping fs.ErrNotExist; a thread that exits while
// they are read is skipped.
func Children(pid int) ([]int, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list the threads of process %d: %w", pid, err)
	}
	var kids []int
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "children")) //nolint:gosec // G304: a /proc file
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread exited
		}
		if err != nil {
			return nil, fmt.Errorf("read the children of process %d: %w", pid, err)
		}
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("read the children of process %d: bad pid %q", pid, f)
			}
			kids = append(kids, n)
		}
	}
	return kids, nil
}
