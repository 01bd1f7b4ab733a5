package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// settleExecutables puts every program the figures time in the page cache
// the same way, the way read(2) fills it: each file is written back,
// dropped from the cache and read whole once.
//
// How a program's pages came into the cache changes how long it takes to
// start. A binary the Go linker has just written (through a mapping of
// the output file, which `go build` then renames into place) or one
// whose pages an exec faulted in starts slower than the same bytes
// written or read with read(2) and write(2), as cp, install(1) and dpkg
// write them: `nscn version` took 0.7 ms more CPU time, 300 alternating
// runs at the same number of page faults, and a whole figure-1 run 2.5 ms
// more (Documentation/performance.md). The bench would otherwise
// time nscn as the last build left it and the peers as the package
// manager or the last reboot did.
func settleExecutables(paths ...string) error {
	for _, p := range paths {
		if err := settle(p); err != nil {
			return err
		}
	}
	return nil
}

// settleTools settles the programs named like exec.LookPath finds them,
// through their symlinks, and the shared libraries ldd lists for them
// (libsystemd-shared for systemd-nspawn, 4 MB); a library that running
// processes map (libc) keeps its mapped pages whatever is done.
func settleTools(ctx context.Context, names ...string) error {
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			return fmt.Errorf("%s is not installed (scripts/install-bench-deps.sh): %w", n, err)
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			return fmt.Errorf("settle %s: %w", n, err)
		}
		if err := settle(p); err != nil {
			return err
		}
		for _, lib := range sharedLibraries(ctx, p) {
			if err := settle(lib); err != nil {
				return err
			}
		}
	}
	return nil
}

// sharedLibraries returns the paths ldd resolves for program, none for a
// static one (ldd fails: "not a dynamic executable") or a script.
func sharedLibraries(ctx context.Context, program string) []string {
	out, err := exec.CommandContext(ctx, "ldd", program).Output() //nolint:gosec // G204: a program the bench found on PATH and runs anyway
	if err != nil {
		return nil
	}
	return parseLdd(string(out))
}

// parseLdd reads ldd's lines, "name => /path (0x…)" and "/path (0x…)"
// (the interpreter), into the absolute paths they name.
func parseLdd(out string) []string {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/") {
			libs = append(libs, f[2])
		} else if len(f) == 2 && strings.HasPrefix(f[0], "/") && strings.HasPrefix(f[1], "(") {
			libs = append(libs, f[0])
		}
	}
	return libs
}

func settle(path string) error {
	f, err := os.Open(path) //nolint:gosec // G304: a program the bench runs
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // an optional program (nscn-fetch of an old build)
		}
		return fmt.Errorf("settle %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	// Dirty pages (a binary just built) are not dropped: write them back
	// first. Pages a running process maps stay; that is harmless.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("settle %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("settle %s: drop its pages: %w", path, err)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("settle %s: read: %w", path, err)
	}
	return nil
}
