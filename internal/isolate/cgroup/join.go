package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Join moves process pid into the cgroups that process of is in, in each
// hierarchy this package manages (the v1 cpu and memory hierarchies, or
// the unified one). enter and app exec use it, with of the app's pid, so
// that a process entered into an app counts against the app's limits
// exactly like the app. It reads /proc/self/mountinfo and
// /proc/<of>/cgroup, and needs root.
func Join(pid, of int) error {
	mounts, _, err := readProc()
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(of), "cgroup"))
	if err != nil {
		return fmt.Errorf("join cgroups of process %d: %w", of, err)
	}
	defer func() { _ = f.Close() }()
	members, err := ParseProcCgroup(f)
	if err != nil {
		return fmt.Errorf("join cgroups of process %d: %w", of, err)
	}
	l, err := findLayout(mounts, members, DefaultRoot)
	if err != nil {
		return err
	}
	var dirs []string
	if l.version == 2 {
		d, err := underMount(l.mount, l.root, l.self)
		if err != nil {
			return err
		}
		dirs = append(dirs, d)
	} else {
		for _, c := range managed {
			m, ok := l.v1[c]
			if !ok {
				continue
			}
			d, err := underMount(m.mountPoint, m.root, m.self)
			if err != nil {
				return err
			}
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("join cgroups of process %d: %w", of, err)
		}
	}
	return nil
}
