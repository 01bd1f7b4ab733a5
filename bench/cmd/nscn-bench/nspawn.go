package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Figure 2: the nspawn flavor against systemd-nspawn booting the same
// systemd, from the same stage1 tree, with an app unit written by hand.
//
// The peer is what an operator would write without nscn: the stage1
// image's rootfs (systemd and its libraries) with the busybox rootfs under
// /opt/stage2, a default.target that wants one service, and the service
// chrooted into the app's rootfs (RootDirectory=) ending the container when
// it ends (SuccessAction=exit-force). It runs under Debian's own
// systemd-nspawn with the same flags nscn gives it where a non-systemd host
// needs them (--register=no --keep-unit), from a cgroup of its own, as
// nscn's stage1 does. Both share the host's network (nscn: --net=host), so
// neither pays for a network namespace.

// nspawnPeer is the hand-written pod of the peer.
type nspawnPeer struct {
	root   string // the tree systemd-nspawn boots
	cgroup string // the name=systemd cgroup it runs in
}

// peerUnits are the peer's units; %s is the app's command line.
var peerUnits = map[string]string{
	"default.target": "[Unit]\nDescription=bench pod\nWants=app.service\n",
	"app.service": "[Unit]\nDescription=bench app\nDefaultDependencies=no\nSuccessAction=exit-force\nFailureAction=exit-force\n\n" +
		"[Service]\nType=simple\nRootDirectory=/opt/stage2/busybox/rootfs\nExecStart=%s\n" +
		"StandardOutput=tty\nTTYPath=/dev/console\n",
}

// nspawnSystemdArgs are the peer's systemd arguments: quiet, as nscn's
// stage1 runs its pods without --debug.
var nspawnSystemdArgs = []string{"--log-level=warning", "--show-status=0", "--log-target=console"}

// makeNspawnPeer extracts the stage1-nspawn image and the busybox image
// from the store of dir into a tree below the scratch directory.
func (b *bencher) makeNspawnPeer(ctx context.Context, dir, name, stage1ID, appID, cmdline string) (nspawnPeer, error) {
	p := nspawnPeer{root: filepath.Join(b.l.scratch, "nspawn-peer-"+name)}
	if _, err := b.nscnOut(ctx, dir, "image", "extract", "--rootfs-only", stage1ID, p.root); err != nil {
		return p, fmt.Errorf("extract the stage1 tree: %w", err)
	}
	app := filepath.Join(p.root, "opt/stage2/busybox/rootfs")
	if err := os.MkdirAll(filepath.Dir(app), 0o755); err != nil {
		return p, err
	}
	if _, err := b.nscnOut(ctx, dir, "image", "extract", "--rootfs-only", appID, app); err != nil {
		return p, fmt.Errorf("extract the app tree: %w", err)
	}
	units := filepath.Join(p.root, "etc/systemd/system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		return p, err
	}
	for name, content := range peerUnits {
		if strings.Contains(content, "%s") {
			content = fmt.Sprintf(content, cmdline)
		}
		if err := os.WriteFile(filepath.Join(units, name), []byte(content), 0o644); err != nil {
			return p, err
		}
	}
	p.cgroup = filepath.Join("/sys/fs/cgroup/systemd", "nscn-bench-peer")
	if err := os.MkdirAll(p.cgroup, 0o755); err != nil {
		return p, fmt.Errorf("the peer's cgroup (needs the name=systemd hierarchy): %w", err)
	}
	return p, nil
}

// argv is the peer's command: a shell that moves itself into the peer's
// cgroup and execs systemd-nspawn --boot.
func (p nspawnPeer) argv(boot bool, extra ...string) []string {
	nspawn := []string{"systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=read-only", "-D", p.root}
	if boot {
		nspawn = append(nspawn, "--boot", "--")
		nspawn = append(nspawn, nspawnSystemdArgs...)
	} else {
		nspawn = append(nspawn, extra...)
	}
	return []string{"sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s", p.cgroup, shellJoin(nspawn))}
}

// remove removes the peer's cgroups once its pods have ended.
func (p nspawnPeer) remove() {
	var dirs []string
	_ = filepath.WalkDir(p.cgroup, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		_ = syscall.Rmdir(d)
	}
}

func (b *bencher) figNspawn(ctx context.Context) {
	const fig = "2. nspawn run /bin/true"
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		b.r.failed(fig, fmt.Errorf("systemd-nspawn is not installed (scripts/install-bench-deps.sh): %w", err))
		return
	}
	dir := filepath.Join(b.l.scratch, "nspawn")
	// The last pods' cgroups and mounts go with gc, not with the scratch
	// directory.
	defer func() {
		if err := runQuiet(context.WithoutCancel(ctx), "sh", "-c", b.gcScript(dir)); err != nil {
			logf("collect the nspawn figure's pods: %v", err)
		}
	}()
	id, err := b.fetch(ctx, dir, b.busybox)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	run := func(exe string, args ...string) []string {
		a := []string{"--insecure-options=image", "run", "--net=host", "--stage1-from-dir=stage1-nspawn.aci", id, "--exec=" + exe}
		if len(args) > 0 {
			a = append(append(a, "--"), args...)
		}
		return b.nscn(dir, a...)
	}
	// One run renders both trees and imports the stage1.
	if argv := run("/bin/true"); runQuiet(ctx, argv[0], argv[1:]...) != nil {
		b.r.failed(fig, fmt.Errorf("%s failed", shellJoin(argv)))
		return
	}
	// What the containment (the sealed pod root, the app's PID and
	// mount namespaces, pivot_root into the app's root, the credentials
	// record) costs at pod start, as the app helper measures it.
	var costs, toExec []time.Duration
	for range 10 {
		gcArgv := []string{"sh", "-c", b.gcScript(dir)}
		if err := runQuiet(ctx, gcArgv[0], gcArgv[1:]...); err != nil {
			b.r.failed(fig, err)
			return
		}
		c, err := containmentCost(ctx, b.nscn(dir, append([]string{"--debug"}, run("/bin/true")[len(b.nscn(dir)):]...)...))
		if err != nil {
			b.r.failed(fig, err)
			return
		}
		costs = append(costs, c.containment)
		toExec = append(toExec, c.toExec)
	}
	containment := median(costs)
	b.r.add(row{figure: fig + ": containment at pod start", ours: ms(containment), peer: "-", ratio: "-", target: "≤5 ms", status: verdict(containment <= 5*time.Millisecond)})
	b.r.add(row{figure: fig + ": app helper, start of the app to its exec", ours: ms(median(toExec)), peer: "-", ratio: "-", target: "-", status: info})
	b.r.note("2: containment: the sum of the times the app helper logs (--debug) for sealing the pod's root and for entering the app's namespaces: from the shim's decision to start the app to the moment it starts it, that is the app's PID namespace and the start of its init (/nscn/app-init, on a thread of its own meanwhile: the window ends once both threads are done), the app's mount namespace, pivot_root, its /proc, credentials and their record; median of 10 pods. The app's own fork and exec, which it had before (an exec in place), are not in it; the next row is the whole, from the shim's decision to start the app to the app's exec. Where the kernel or the app's seccomp filter does not allow the shim to start the app from its own thread, the helper starts a process to do it and the line is that process's exec: an upper bound.")
	s1, err := b.fetch(ctx, dir, filepath.Join(filepath.Dir(b.c.nscn), "stage1-nspawn.aci"))
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	peer, err := b.makeNspawnPeer(ctx, dir, "true", s1, id, "/bin/true")
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	defer peer.remove()
	bare := peer.argv(false, "--chdir=/", "/opt/stage2/busybox/rootfs/bin/true")
	gc := b.gcScript(dir)
	s, err := hyperfine(ctx, b.l.scratch, b.c.runs, 2,
		command{name: "nscn-nspawn", argv: run("/bin/true"), prepare: gc},
		command{name: "systemd-nspawn --boot", argv: peer.argv(true)},
		command{name: "systemd-nspawn /bin/true", argv: bare},
	)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	ours, boot, plain := s[0].median, s[1].median, s[2].median
	r := func(a, p time.Duration) float64 { return float64(a) / float64(p) }
	b.r.add(row{figure: fig + " to exit vs systemd-nspawn --boot", ours: ms(ours), peer: ms(boot) + " systemd-nspawn --boot", ratio: times(r(ours, boot)), target: "≤1.20×", status: verdict(r(ours, boot) <= 1.2)})
	b.timelineNote(ctx, "2", gc, run("/bin/true"))
	b.r.add(row{figure: fig + " to exit vs bare systemd-nspawn", ours: ms(ours), peer: ms(plain) + " systemd-nspawn -D R /bin/true", ratio: times(r(ours, plain)), target: "-", status: info})

	// Time to the app's first output: the app prints a line, and the
	// clock stops when the line reaches nscn's (or nspawn's) stdout.
	const word = "nscn-bench-ready"
	echoPeer, err := b.makeNspawnPeer(ctx, dir, "echo", s1, id, "/bin/echo "+word)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	var oursFirst, peerFirst []time.Duration
	for i := range b.c.runs {
		if err := runQuiet(ctx, "sh", "-c", gc); err != nil {
			b.r.failed(fig, err)
			return
		}
		// Alternate which goes first, as hyperfine's rounds do.
		pair := [][]string{run("/bin/echo", word), echoPeer.argv(true)}
		if i%2 == 1 {
			slices.Reverse(pair)
		}
		for k, argv := range pair {
			d, err := firstOutput(ctx, argv, word)
			if err != nil {
				b.r.failed(fig, err)
				return
			}
			if (k == 0) == (i%2 == 0) {
				oursFirst = append(oursFirst, d)
			} else {
				peerFirst = append(peerFirst, d)
			}
		}
	}
	of, pf := median(oursFirst), median(peerFirst)
	b.r.add(row{figure: fig + " to first output vs systemd-nspawn --boot", ours: ms(of), peer: ms(pf) + " systemd-nspawn --boot", ratio: times(r(of, pf)), target: "≤1.10×", status: verdict(r(of, pf) <= 1.1)})
	b.r.note("2: `nscn --insecure-options=image run --net=host --stage1-from-dir=stage1-nspawn.aci IMAGE-ID --exec=/bin/true`, trees rendered and the stage1 imported beforehand, exited pods removed (untimed) before each run. The peer is Debian's systemd-nspawn booting, with `--boot --register=no --keep-unit`, the stage1 image's own rootfs (the same systemd 252) with the busybox rootfs below /opt/stage2 and two hand-written units: default.target wanting app.service, which runs the app with RootDirectory= and SuccessAction=exit-force. Both start from a cgroup of their own in the name=systemd hierarchy and share the host's network. The bare row is `systemd-nspawn -D R /bin/true` of the same tree, no systemd.")
	b.r.note("2: first output: the app is `/bin/echo`, and the time is from the start of the command until the line reaches its stdout; medians of %d runs each, the two alternating.", b.c.runs)
}

// firstOutput starts argv and returns the time until want appears on its
// stdout; it then waits for the command to end.
func firstOutput(ctx context.Context, argv []string, want string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // G204: the bench runs the tools it measures, argv built here
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var got time.Duration
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, rerr := out.Read(buf)
		seen.Write(buf[:n])
		if got == 0 && bytes.Contains(seen.Bytes(), []byte(want)) {
			got = time.Since(start)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", shellJoin(argv), err, stderr.String())
	}
	if got == 0 {
		return 0, fmt.Errorf("%s: %q never appeared on stdout (got %q)", shellJoin(argv), want, seen.String())
	}
	return got, nil
}

// containmentLines are the app helper's debug lines whose durations add
// up to the containment's cost at pod start: the seal of the pod's root,
// and the entry into the app's namespaces (the init's start, the app's
// mount namespace, /proc and root) up to the app's own start.
var containmentLines = []string{"containment: pod root sealed", "containment: app namespaces entered"}

// toExecLine is the app helper's debug line for the time from its
// decision to start the app to the app's exec.
const toExecLine = "app running in its namespaces"

// appStart is what containmentCost reads from one pod's run.
type appStart struct {
	containment time.Duration // the sum of containmentLines
	toExec      time.Duration // toExecLine
}

// containmentCost runs argv (an nscn --debug run of an nspawn pod) and
// reads the app helper's durations.
func containmentCost(ctx context.Context, argv []string) (appStart, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //nolint:gosec // G204: the bench runs the nscn under test
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return appStart{}, fmt.Errorf("%s: %w\n%s", shellJoin(argv), err, stderr.String())
	}
	a, err := parseAppStart(stderr.String())
	if err != nil {
		return appStart{}, fmt.Errorf("%s: %w", shellJoin(argv), err)
	}
	return a, nil
}

// parseAppStart reads the app helper's durations from an nscn --debug
// run's stderr.
func parseAppStart(stderr string) (appStart, error) {
	var a appStart
	n, m := 0, 0
	for _, line := range strings.Split(stderr, "\n") {
		msg := func(m string) bool { return strings.Contains(line, `msg="`+m+`"`) }
		isCost, isExec := slices.ContainsFunc(containmentLines, msg), msg(toExecLine)
		if !isCost && !isExec {
			continue
		}
		d, err := tookField(line)
		if err != nil {
			return appStart{}, err
		}
		if isCost {
			a.containment += d
			n++
		} else {
			a.toExec = d
			m++
		}
	}
	if n != len(containmentLines) || m != 1 {
		return appStart{}, fmt.Errorf("want %d containment lines and one %q from the app helper, got %d and %d", len(containmentLines), toExecLine, n, m)
	}
	return a, nil
}

// tookField parses the took= field of a debug line.
func tookField(line string) (time.Duration, error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "took="); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, fmt.Errorf("debug line %q: %w", line, err)
			}
			return d, nil
		}
	}
	return 0, fmt.Errorf("debug line %q has no took=", line)
}
