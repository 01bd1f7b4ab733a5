// Command nscn-bench measures Nose Cone against its peers on this machine, in
// one invocation, and prints a table of medians and ratios: the fly flavor
// against crun, runc and unshare+chroot, image import against gzip|sha512sum,
// rendering against GNU tar, the memory a pod adds, and how list and rm scale
// with the number of pods. Documentation/performance.md describes each figure
// and the last measured table.
//
// It is a host-side tool for `make bench`: it needs root, the peers installed
// by scripts/install-bench-deps.sh, hyperfine, and the images built by
// `make test-images`. It re-executes itself in a private mount namespace, so
// every mount it or the pods it starts make (tmpfs, cgroup2, overlays) goes
// away with it, and the host's mount table is left as it was. It exits 1 when
// a figure misses its target and 2 when it cannot measure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// nsEnv marks the re-executed child that runs inside the private mount
// namespace.
const nsEnv = "NSCN_BENCH_IN_MOUNT_NS"

// config is what the flags set.
type config struct {
	nscn    string // bin/nscn; stage1-fly.aci sits beside it
	images  string // build/images (busybox.aci)
	work    string // build/bench: fixtures (kept) and scratch data dirs (removed)
	runs    int    // runs of the slow figures (import, render, rm)
	fast    int    // runs of the fast figures (run, memory, list)
	pods    int    // pods for the scale figure
	quick   bool   // development only: few runs, smaller scale
	workers int    // parallel pod creation
	criTest string // build/cri.test, the critest harness (figure 10)
	// figures are the figures to measure (1 to 10); all when empty.
	figures map[int]bool
}

// want reports whether figure n is to be measured.
func (c config) want(n int) bool { return len(c.figures) == 0 || c.figures[n] }

// parseFigures reads -figures: "all" or a comma-separated list of figure
// numbers or names (figureNames).
func parseFigures(s string) (map[int]bool, error) {
	if s == "" || s == "all" {
		return nil, nil
	}
	out := map[int]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		n, ok := figureNames[f]
		if !ok {
			var err error
			if n, err = strconv.Atoi(f); err != nil || n < 1 || n > 10 {
				return nil, fmt.Errorf("-figures: %q is not a figure number (1 to 10) or name (pull, kvm, cri)", f)
			}
		}
		out[n] = true
	}
	return out, nil
}

// allFigures are the figures -figures may name.
var allFigures = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

// figureNames are the names -figures takes besides numbers.
var figureNames = map[string]int{"pull": 8, "kvm": 9, "cri": 10}

func main() {
	os.Exit(run()) //nolint:forbidigo // main: only main exits
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == pullClientCmd {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return pullClientMain(ctx, os.Args[2:])
	}
	var c config
	flag.StringVar(&c.nscn, "nscn", "bin/nscn", "the nscn binary; stage1-fly.aci and nscn-fetch (for the fetches) must be beside it")
	flag.StringVar(&c.images, "images", "build/images", "directory holding busybox.aci (make test-images)")
	flag.StringVar(&c.criTest, "cri-test", "", "the critest harness binary (build/cri.test, make cri-harness) for figure 10; its inputs come from the environment make sets")
	flag.StringVar(&c.work, "work", "build/bench", "work directory: cached fixtures and scratch data directories")
	flag.IntVar(&c.runs, "runs", 30, "runs per command for the slow figures (at least 30)")
	flag.IntVar(&c.fast, "fast-runs", 50, "runs per command for the fast figures (at least 30)")
	flag.IntVar(&c.pods, "pods", 1000, "pods for the scale figure")
	flag.BoolVar(&c.quick, "quick", false, "development only: 5 runs and 100 pods; the table is marked as not valid")
	figures := flag.String("figures", "all", "figures to measure: all, or numbers such as 1,3, pull for 8, kvm for 9, cri for 10 (a partial table never replaces the published one)")
	flag.Parse()
	var err error
	if c.figures, err = parseFigures(*figures); err != nil {
		fmt.Fprintf(os.Stderr, "nscn-bench: %v\n", err)
		return 2
	}
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "nscn-bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if c.quick {
		c.runs, c.fast, c.pods = 5, 5, 100
	} else if c.runs < 30 || c.fast < 30 {
		fmt.Fprintln(os.Stderr, "nscn-bench: medians are over at least 30 runs (use -quick while developing)")
		return 2
	}
	if c.pods < 100 {
		fmt.Fprintln(os.Stderr, "nscn-bench: -pods must be at least 100")
		return 2
	}
	c.workers = nproc()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "nscn-bench: run as root (sudo make bench)")
		return 2
	}
	for _, p := range []*string{&c.nscn, &c.images, &c.work, &c.criTest} {
		if *p == "" {
			continue // -cri-test not given
		}
		a, err := filepath.Abs(*p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nscn-bench: %v\n", err)
			return 2
		}
		*p = a
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv(nsEnv) == "" {
		return parent(ctx, c)
	}
	missed, err := measure(ctx, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nscn-bench: %v\n", err)
		return 2
	}
	if missed {
		return 1
	}
	return 0
}

// parent re-executes the bench in a private mount namespace (Go makes the
// new namespace's mounts private, so nothing propagates back), waits for
// it, and removes the scratch data directories the pods left on disk once
// the namespace, and every mount in it, is gone.
func parent(ctx context.Context, c config) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nscn-bench: %v\n", err)
		return 2
	}
	cmd := exec.CommandContext(ctx, self, os.Args[1:]...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	// On SIGINT or SIGTERM, ask the child to stop and wait for it: it ends
	// its hyperfine and pods, and the namespace goes with it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), nsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	code := 0
	if err := cmd.Run(); err != nil {
		code = 2
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		} else {
			fmt.Fprintf(os.Stderr, "nscn-bench: bench in a private mount namespace: %v\n", err)
		}
	}
	if err := removeScratch(c.work); err != nil {
		fmt.Fprintf(os.Stderr, "nscn-bench: clean up: %v\n", err)
		if code == 0 {
			code = 2
		}
	}
	return code
}
