package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bencher holds what every figure shares.
type bencher struct {
	c       config
	l       layout
	r       *report
	stage1  string // bin/stage1-fly.aci
	nspawn  string // bin/stage1-nspawn.aci (figure 3)
	busybox string // build/images/busybox.aci
	bigSize int64  // uncompressed size of the big image's tar
}

// measure runs every figure, prints the machine and the table on stdout,
// and reports whether a target was missed.
func measure(ctx context.Context, c config) (bool, error) {
	b := &bencher{
		c:       c,
		l:       newLayout(c.work),
		r:       &report{quick: c.quick},
		stage1:  filepath.Join(filepath.Dir(c.nscn), "stage1-fly.aci"),
		nspawn:  filepath.Join(filepath.Dir(c.nscn), "stage1-nspawn.aci"),
		busybox: filepath.Join(c.images, "busybox.aci"),
	}
	if err := b.setup(ctx); err != nil {
		return false, err
	}
	desc := machine(ctx, c.nscn, c.work)
	start := time.Now()

	for _, f := range []struct {
		n   int
		run func(context.Context)
	}{
		{1, b.figRun},
		{2, b.figNspawn},
		{3, b.figNet},
		{4, b.figImport},
		{5, b.figRender},
		{6, b.figMemory},
		{7, b.figScale},
		{8, b.figPull},
		{9, b.figKvm},
		{10, b.figCri},
	} {
		if c.want(f.n) {
			// Writeback the previous figure left (its pods' files on the
			// work directory's disk) would otherwise run during this
			// one, on the same two cores.
			unix.Sync()
			f.run(ctx)
		}
	}
	b.r.note("before each figure the harness calls sync(2), so that the writeback of what the previous figure wrote does not run during the next one")
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.r.note("runs: medians over %d runs per command for figures 1 and 6 and for list, %d for figures 4 and 5 and for rm; each hyperfine measurement is split into %d rounds, the order of the commands reversed every other round, so a change of load on the machine falls on every command alike", b.c.fast, b.c.runs, rounds)
	b.r.note("whole bench: %s; load average at the end: %s", time.Since(start).Round(time.Second), loadAvg())

	fmt.Println("# Nose Cone benchmark")
	fmt.Println()
	if c.quick {
		fmt.Println("**-quick run: too few runs; these figures are not valid.**")
		fmt.Println()
	}
	if c.figures != nil {
		fmt.Println("**-figures run: only some figures were measured; the count of targets met covers those.**")
		fmt.Println()
	}
	for _, l := range desc {
		fmt.Println(l)
	}
	fmt.Println()
	b.r.print(os.Stdout)
	return b.r.missed(), nil
}

// setup checks the tools, makes the scratch directories, mounts the tmpfs
// and builds the fixtures.
func (b *bencher) setup(ctx context.Context) error {
	tools := []string{"hyperfine", "sh"}
	if b.c.want(1) || b.c.want(4) || b.c.want(5) || b.c.want(6) {
		tools = append(tools, "crun", "runc", "unshare", "chroot", "gzip", "tar", "sha512sum", "/usr/bin/time")
	}
	if b.c.want(8) {
		tools = append(tools, pullTools...)
	}
	if b.c.want(10) {
		tools = append(tools, "containerd", "containerd-shim-runc-v2", "runc", "docker-registry")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed (scripts/install-bench-deps.sh): %w", t, err)
		}
	}
	for _, f := range []string{b.c.nscn, b.stage1, b.busybox} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (make all test-images)", err)
		}
	}
	settled := tools
	if b.c.want(2) {
		if _, err := exec.LookPath("systemd-nspawn"); err == nil {
			settled = append(settled, "systemd-nspawn") // figure 2's peer; its absence is figure 2's to report
		}
	}
	if err := settleTools(ctx, settled...); err != nil {
		return err
	}
	if err := settleExecutables(b.c.nscn, filepath.Join(filepath.Dir(b.c.nscn), "nscn-fetch")); err != nil {
		return err
	}
	if err := os.RemoveAll(b.l.scratch); err != nil {
		return fmt.Errorf("clean scratch: %w", err)
	}
	for _, d := range []string{b.l.tmpfs, b.l.fly, b.l.net, b.l.scale, b.l.scaleSmall, b.l.local, b.l.system, b.l.memcg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Only this process's mount namespace sees it.
	if err := syscall.Mount("tmpfs", b.l.tmpfs, "tmpfs", 0, "mode=0755,size=8g"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", b.l.tmpfs, err)
	}
	if !b.c.want(1) && !b.c.want(4) && !b.c.want(5) && !b.c.want(6) {
		return nil // the bundle and the big image serve those figures only
	}
	if err := makeBundle(ctx, b.busybox, b.l.bundle); err != nil {
		return err
	}
	n, err := ensureBigACI(ctx, b.l.bigACI)
	if err != nil {
		return err
	}
	if n < 200<<20 {
		return fmt.Errorf("big image %s: %d bytes uncompressed, want at least 200 MiB", b.l.bigACI, n)
	}
	b.bigSize = n
	return nil
}

// nscn returns the argv of an nscn command on data directory dir, with
// empty configuration directories (no stage1.d, no trusted keys).
func (b *bencher) nscn(dir string, args ...string) []string {
	return append([]string{b.c.nscn, "--dir=" + dir, "--local-config=" + b.l.local, "--system-config=" + b.l.system}, args...)
}

// nscnOut runs nscn and returns its stdout, trimmed.
func (b *bencher) nscnOut(ctx context.Context, dir string, args ...string) (string, error) {
	argv := b.nscn(dir, args...)
	out, err := runOut(ctx, argv[0], argv[1:]...)
	return strings.TrimSpace(out), err
}

// fetch imports an image and returns its ID.
func (b *bencher) fetch(ctx context.Context, dir, image string) (string, error) {
	id, err := b.nscnOut(ctx, dir, "--insecure-options=image", "fetch", image)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(id, "sha512-") {
		return "", fmt.Errorf("fetch %s: unexpected output %q", image, id)
	}
	return id, nil
}

// flyRun is `nscn run` of /bin/true from the busybox image with the fly
// stage1, chosen as the brief says (--stage1-from-dir) or, with s1, by the
// ID of the stage1 image already in the store.
func (b *bencher) flyRun(dir, imageID, s1 string, extra ...string) []string {
	stage1 := "--stage1-from-dir=stage1-fly.aci"
	if s1 != "" {
		stage1 = "--stage1-hash=" + s1
	}
	args := append([]string{"--insecure-options=image", "run", stage1}, extra...)
	return b.nscn(dir, append(args, imageID, "--exec=/bin/true")...)
}

// gcScript is the shell preparation that removes every exited pod.
func (b *bencher) gcScript(dir string) string {
	return shellJoin(b.nscn(dir, "gc", "--grace-period=0s")) + " 2>/dev/null"
}

// Figure 1: the fly flavor against crun, runc and unshare+chroot.
func (b *bencher) figRun(ctx context.Context) {
	const fig = "1. fly run /bin/true"
	id, err := b.fetch(ctx, b.l.fly, b.busybox)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	// One run renders the tree and imports the stage1: both are then in
	// the store, as the figure wants.
	argv := b.flyRun(b.l.fly, id, "")
	if err := runQuiet(ctx, argv[0], argv[1:]...); err != nil {
		b.r.failed(fig, err)
		return
	}
	s1, err := b.fetch(ctx, b.l.fly, b.stage1)
	if err != nil {
		b.r.failed(fig, err)
		return
	}

	// crun refuses the hybrid layout; it and runc run with a cgroup2
	// hierarchy on /sys/fs/cgroup, mounted in this private namespace only.
	// The other commands run in the same namespace, so all are measured
	// in one environment.
	if err := syscall.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""); err != nil {
		b.r.failed(fig, fmt.Errorf("mount cgroup2 on /sys/fs/cgroup: %w", err))
		return
	}
	defer func() {
		if err := syscall.Unmount("/sys/fs/cgroup", 0); err != nil {
			logf("unmount the bench's cgroup2: %v", err)
		}
	}()
	rootfs := filepath.Join(b.l.bundle, "rootfs")
	gc := b.gcScript(b.l.fly)
	s, err := hyperfine(ctx, b.l.scratch, b.c.fast, 3,
		command{name: "nscn-fly", argv: b.flyRun(b.l.fly, id, ""), prepare: gc},
		command{name: "nscn-fly-stage1-hash", argv: b.flyRun(b.l.fly, id, s1), prepare: gc},
		command{name: "crun", argv: []string{"crun", "--cgroup-manager=disabled", "run", "--bundle", b.l.bundle, "nscn-bench-crun"}},
		command{name: "runc", argv: []string{"runc", "run", "--bundle", b.l.bundle, "nscn-bench-runc"}},
		command{name: "unshare+chroot", argv: []string{"unshare", "-m", "chroot", rootfs, "/bin/true"}},
	)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	fly, flyHash, crun, runc, floor := s[0].median, s[1].median, s[2].median, s[3].median, s[4].median
	r := func(a, p time.Duration) float64 { return float64(a) / float64(p) }
	b.r.add(row{figure: fig + " vs crun", ours: ms(fly), peer: ms(crun) + " crun", ratio: times(r(fly, crun)), target: "≤1.20×", status: verdict(r(fly, crun) <= 1.2)})
	b.r.add(row{figure: fig + " vs runc", ours: ms(fly), peer: ms(runc) + " runc", ratio: times(r(fly, runc)), target: "-", status: info})
	b.r.add(row{figure: fig + " vs unshare -m chroot", ours: ms(fly), peer: ms(floor) + " unshare+chroot", ratio: times(r(fly, floor)), target: "≤2.00×", status: verdict(r(fly, floor) <= 2)})
	b.r.add(row{figure: fig + ", stage1 by --stage1-hash, vs crun", ours: ms(flyHash), peer: ms(crun) + " crun", ratio: times(r(flyHash, crun)), target: "-", status: info})
	b.r.note("1: `nscn --insecure-options=image run --stage1-from-dir=stage1-fly.aci IMAGE-ID --exec=/bin/true`, busybox image already fetched, its tree rendered and the stage1 image imported; data directory %s (%s). Exited pods are removed by `nscn gc --grace-period=0s` before each run (untimed), so every run starts with an empty pod list.", b.l.fly, fsType(b.l.fly))
	b.r.note("1: crun, runc and unshare+chroot start the same busybox rootfs, extracted to %s, with a config.json giving fly's namespaces (mount only) and mounts (proc, /sys read-only, /dev, tmpfs /tmp). All five commands run in one hyperfine invocation inside a private mount namespace where a bare cgroup2 hierarchy is mounted on /sys/fs/cgroup, because crun 1.8 refuses the host's hybrid layout. crun runs with `--cgroup-manager=disabled`. runc has no such switch: with no cgroupsPath it creates and removes a cgroup2 group named after the container (no controller limits are set).", b.l.bundle)
	b.timelineNote(ctx, "1", gc, b.flyRun(b.l.fly, id, ""))
	b.r.note("1: the `--stage1-hash` row runs the same pod with the stage1 image named by its ID instead of `--stage1-from-dir`, which imports bin/stage1-fly.aci once and then recognises it unchanged.")
}

// Figure 4: import of a large gzip ACI against gzip -dc | sha512sum.
func (b *bencher) figImport(ctx context.Context) {
	const fig = "4. fetch of a gzip ACI onto tmpfs vs gzip -dc | sha512sum"
	aci := filepath.Join(b.l.tmpfs, "big.aci")
	if err := runQuiet(ctx, "cp", b.l.bigACI, aci); err != nil {
		b.r.failed(fig, err)
		return
	}
	defer func() { _ = os.Remove(aci) }()
	dir := filepath.Join(b.l.tmpfs, "import")
	// Check once that nscn and the peer agree on the image's ID.
	sum, err := runOut(ctx, "sh", "-c", `gzip -dc "$1" | sha512sum`, "sh", aci)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	id, err := b.fetch(ctx, dir, aci)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	if f := strings.Fields(sum); len(f) == 0 || len(f[0]) < 64 || id != "sha512-"+f[0][:64] {
		b.r.failed(fig, fmt.Errorf("nscn fetch printed %s, sha512sum %q", id, sum))
		return
	}
	s, err := hyperfine(ctx, b.l.scratch, b.c.runs, 1,
		command{name: "nscn-fetch", argv: b.nscn(dir, "--insecure-options=image", "fetch", aci), prepare: "rm -rf " + shellQuote(dir)},
		command{name: "gzip|sha512sum", argv: []string{"sh", "-c", `gzip -dc "$1" | sha512sum`, "sh", aci}},
	)
	_ = os.RemoveAll(dir)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	ours, peer := s[0].median, s[1].median
	tput := func(d time.Duration) string {
		return fmt.Sprintf("%s (%.0f MB/s)", ms(d), float64(b.bigSize)/1e6/d.Seconds())
	}
	ratio := float64(peer) / float64(ours)
	b.r.add(row{figure: fig, ours: tput(ours), peer: tput(peer), ratio: times(ratio) + " throughput", target: "≥1.30×", status: verdict(ratio >= 1.3)})
	st, _ := os.Stat(b.l.bigACI)
	var csize int64
	if st != nil {
		csize = st.Size()
	}
	b.r.note("4: %s, %s uncompressed (%s gzip, generated once by the bench from a fixed seed: ~4,000 small text files, large text, low-entropy binary and random files, 200 symlinks). Each run fetches it into an empty data directory on tmpfs (removed before each run, untimed); the ACI itself is on the same tmpfs. Throughput is uncompressed bytes per second.", filepath.Base(b.l.bigACI), mb(float64(b.bigSize)), mb(float64(csize)))
}

// Figure 5: rendering the large image into the tree store against GNU tar.
func (b *bencher) figRender(ctx context.Context) {
	const fig = "5. image render into the tree store (tmpfs) vs tar -x"
	dir := filepath.Join(b.l.tmpfs, "render")
	tarFile := filepath.Join(b.l.tmpfs, "big.tar")
	out := filepath.Join(b.l.tmpfs, "tar-out")
	defer func() {
		for _, p := range []string{dir, tarFile, out} {
			_ = os.RemoveAll(p)
		}
	}()
	id, err := b.fetch(ctx, dir, b.l.bigACI)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	if err := runQuiet(ctx, b.c.nscn, "--dir="+dir, "image", "export", id, tarFile); err != nil {
		b.r.failed(fig, err)
		return
	}
	trees := filepath.Join(dir, "cas", "tree")
	s, err := hyperfine(ctx, b.l.scratch, b.c.runs, 1,
		command{name: "nscn-render", argv: b.nscn(dir, "image", "render", id), prepare: "rm -rf " + shellQuote(trees)},
		command{name: "tar-x", argv: []string{"tar", "-x", "-f", tarFile, "-C", out}, prepare: "rm -rf " + shellQuote(out) + " && mkdir " + shellQuote(out)},
	)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	ours, peer := s[0].median, s[1].median
	ratio := float64(peer) / float64(ours)
	b.r.add(row{figure: fig, ours: ms(ours), peer: ms(peer) + " tar -x", ratio: times(ratio) + " speed", target: "≥0.80×", status: verdict(ratio >= 0.8)})
	b.r.note("5: `nscn image render ID` of the same image, its tree store (`cas/tree`) removed before each run (untimed), against GNU `tar -x` (as root: owners and modes kept) of the image's uncompressed tar (`nscn image export`) into an empty directory; both on tmpfs. Speed is tar's time over nscn's.")
	b.timelineNote(ctx, "5", "rm -rf "+shellQuote(trees), b.nscn(dir, "image", "render", id))
}

// Figure 6: the memory a fly pod adds beyond its app.
func (b *bencher) figMemory(ctx context.Context) {
	const fig = "6. memory a fly pod adds beyond the app"
	id, err := b.fetch(ctx, b.l.fly, b.busybox)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	mc, err := openMemcg(b.l.memcg)
	if err != nil {
		logf("%s: no cgroup v1 memory controller (%v); only the largest process's maximum RSS is reported", fig, err)
	}
	defer mc.close()
	rootfs := filepath.Join(b.l.bundle, "rootfs")
	pod := b.flyRun(b.l.fly, id, "")
	app := []string{"unshare", "-m", "chroot", rootfs, "/bin/true"}
	gc := b.nscn(b.l.fly, "gc", "--grace-period=0s")
	var podPeak, appPeak, podRSS, appRSS []float64
	for i := range b.c.fast + 2 {
		pp, pr, err := mc.measure(ctx, pod)
		if err == nil {
			err = runQuiet(ctx, gc[0], gc[1:]...)
		}
		if err != nil {
			b.r.failed(fig, err)
			return
		}
		ap, ar, err := mc.measure(ctx, app)
		if err != nil {
			b.r.failed(fig, err)
			return
		}
		if i < 2 { // warmup
			continue
		}
		podPeak, appPeak = append(podPeak, pp), append(appPeak, ap)
		podRSS, appRSS = append(podRSS, pr), append(appRSS, ar)
	}
	if mc != nil {
		p, a := medianF(podPeak), medianF(appPeak)
		b.r.add(row{figure: fig + " (cgroup peak)", ours: mb(p), peer: mb(a) + " app alone", ratio: "+" + mb(p-a), target: "≤ +3.0 MB", status: verdict(p-a <= 3e6)})
	}
	p, a := medianF(podRSS), medianF(appRSS)
	st := info
	if mc == nil {
		st = verdict(p-a <= 3e6)
	}
	b.r.add(row{figure: fig + " (max RSS of the largest process)", ours: mb(p), peer: mb(a) + " app alone", ratio: "+" + mb(p-a), target: "≤ +3.0 MB", status: st})
	b.r.note("6: %d alternating runs of the figure-1 pod (`--stage1-from-dir`) and of the app alone (`unshare -m chroot ROOTFS /bin/true`), each started under GNU time in a fresh cgroup v1 memory group (a private mount of the memory hierarchy, below the bench's own group); medians. `cgroup peak` is `memory.max_usage_in_bytes`: everything the run's processes had resident at once, page cache they wrote included; it decides pass or fail. `max RSS` is GNU time's maximum resident set size (`%%M`, what `time -v` prints): the largest single process, for context.", b.c.fast)
}

// Figure 7: list and rm as pods accumulate.
func (b *bencher) figScale(ctx context.Context) {
	const fig = "7. scale"
	dir, smallDir := b.l.scale, b.l.scaleSmall
	ids := map[string][2]string{} // data dir → image ID, stage1 ID
	for _, d := range []string{dir, smallDir} {
		id, err := b.fetch(ctx, d, b.busybox)
		if err != nil {
			b.r.failed(fig, err)
			return
		}
		s1, err := b.fetch(ctx, d, b.stage1)
		if err != nil {
			b.r.failed(fig, err)
			return
		}
		ids[d] = [2]string{id, s1}
	}
	// Each rm run removes a pod a preparation just ran in the same data
	// directory, so the count stays put.
	rmCmd := func(name, d string) command {
		uuidFile := filepath.Join(b.l.scratch, name+"-uuid")
		return command{
			name:    name,
			argv:    b.nscn(d, "rm", "--uuid-file="+uuidFile),
			prepare: shellJoin(b.flyRun(d, ids[d][0], ids[d][1], "--uuid-file-save="+uuidFile)) + " >/dev/null 2>&1",
		}
	}
	listCmd := command{name: "nscn-list", argv: b.nscn(dir, "list")}
	var created time.Duration
	grow := func(d string, n int) error {
		start := time.Now()
		err := b.createPods(ctx, d, ids[d][0], ids[d][1], n)
		created += time.Since(start)
		return err
	}
	small, large := 10, b.c.pods
	mid := large / 10

	if err := grow(smallDir, small); err != nil {
		b.r.failed(fig, err)
		return
	}
	if err := grow(dir, mid); err != nil {
		b.r.failed(fig, err)
		return
	}
	s, err := hyperfine(ctx, b.l.scratch, b.c.fast, 2, listCmd)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	listMid := s[0].median
	if err := grow(dir, large); err != nil {
		b.r.failed(fig, err)
		return
	}
	if s, err = hyperfine(ctx, b.l.scratch, b.c.fast, 2, listCmd); err != nil {
		b.r.failed(fig, err)
		return
	}
	listLarge := s[0].median
	// Both rms in one invocation, alternating: the ratio compares runs
	// made under the same load, not minutes apart.
	if s, err = hyperfine(ctx, b.l.scratch, b.c.runs, 3, rmCmd("nscn-rm-small", smallDir), rmCmd("nscn-rm", dir)); err != nil {
		b.r.failed(fig, err)
		return
	}
	rmSmall, rmLarge := s[0].median, s[1].median

	lr := float64(listLarge) / float64(listMid)
	b.r.add(row{
		figure: fmt.Sprintf("7. nscn list, %d vs %d exited pods", large, mid),
		ours:   ms(listLarge), peer: ms(listMid) + fmt.Sprintf(" (%d pods)", mid), ratio: times(lr),
		target: "≤100 ms", status: verdict(listLarge <= 100*time.Millisecond),
	})
	rr := float64(rmLarge) / float64(rmSmall)
	b.r.add(row{
		figure: fmt.Sprintf("7. nscn rm of one pod, %d vs %d pods", large, small),
		ours:   ms(rmLarge), peer: ms(rmSmall) + fmt.Sprintf(" (%d pods)", small), ratio: times(rr),
		target: "≤1.30×", status: verdict(rr <= 1.3),
	})
	b.r.note("7: pods are real exited fly pods: `nscn run --stage1-hash=ID IMAGE --exec=/bin/true` (the stage1 image by the ID `--stage1-from-dir` imports, to skip its per-run decompression), %d at a time; creating the %d pods took %s (untimed). Data directories %s (%d pods, then %d) and %s (%d pods), %s. Each pod keeps its app's overlay mount until it is removed (fly's stage1 rootfs is a plain directory, no mount), as it would on a host; both data directories' pods are in the bench's one mount namespace, so the mount table is the same for both rms. `rm` is timed on a pod a preparation step ran just before in the same data directory (untimed), so the counts stay put; the two rms run in one hyperfine invocation, alternating. `list` prints the default table.", b.c.workers, large+small, created.Round(time.Second), dir, mid, large, smallDir, small, fsType(dir))
	rm := rmCmd("nscn-rm", dir)
	b.timelineNote(ctx, fmt.Sprintf("7 (rm, %d pods)", large), rm.prepare, rm.argv)
	b.timelineNote(ctx, fmt.Sprintf("7 (list, %d pods)", large), "", listCmd.argv)
}

// createPods runs pods until the data directory holds n exited ones.
func (b *bencher) createPods(ctx context.Context, dir, imageID, s1 string, n int) error {
	have, err := b.countPods(ctx, dir)
	if err != nil {
		return err
	}
	todo := n - have
	if todo <= 0 {
		return nil
	}
	logf("creating %d pods (%d to %d)", todo, have, n)
	argv := b.flyRun(dir, imageID, s1)
	work := make(chan struct{})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range b.c.workers {
		wg.Go(func() {
			for range work {
				if err := runQuiet(ctx, argv[0], argv[1:]...); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for range todo {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if first != nil {
		return fmt.Errorf("create pods: %w", first)
	}
	if have, err = b.countPods(ctx, dir); err != nil {
		return err
	}
	if have != n {
		return fmt.Errorf("create pods: %d pods, want %d", have, n)
	}
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// countPods counts the exited pods nscn lists.
func (b *bencher) countPods(ctx context.Context, dir string) (int, error) {
	out, err := b.nscnOut(ctx, dir, "list", "--format=json")
	if err != nil {
		return 0, err
	}
	var pods []struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		return 0, fmt.Errorf("nscn list --format=json: %w", err)
	}
	n := 0
	for _, p := range pods {
		if p.State != "exited" {
			return 0, fmt.Errorf("pod in state %q, want exited", p.State)
		}
		n++
	}
	return n, nil
}

func medianF(v []float64) float64 {
	ds := make([]time.Duration, len(v))
	for i, x := range v {
		ds[i] = time.Duration(x)
	}
	return float64(median(ds))
}

var errNoMemcg = errors.New("no cgroup v1 memory controller")
