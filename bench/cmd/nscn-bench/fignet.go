package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Figure 3: what the default network adds to an nspawn pod's start.
//
// The same pod (busybox's /bin/true on stage1-nspawn) starts with
// --net=none, a namespace with only lo, and with --net=default, the same
// plus CNI ADD of the ptp network (veth pair, host-local lease,
// masquerading rules). The difference is the network's cost; the target
// is at most 100 ms. Exited pods are collected before each run, untimed,
// so every run also finds the IPAM directory and iptables as at the start.
// With podman installed and a busybox image in its store, podman's own
// surcharge (--network=bridge against --network=none) is shown beside it.
func (b *bencher) figNet(ctx context.Context) {
	const fig = "3. nspawn pod start, --net=default vs --net=none"
	if _, err := os.Stat(b.nspawn); err != nil {
		b.r.failed(fig, fmt.Errorf("%w (make stage1-nspawn)", err))
		return
	}
	id, err := b.fetch(ctx, b.l.net, b.busybox)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	run := func(net string) []string {
		return b.nscn(b.l.net, "--insecure-options=image", "run", "--stage1-from-dir=stage1-nspawn.aci", "--net="+net, id, "--exec=/bin/true")
	}
	// One run imports the stage1 and renders the trees.
	if err := runQuiet(ctx, run("none")[0], run("none")[1:]...); err != nil {
		b.r.failed(fig, err)
		return
	}
	gc := b.gcScript(b.l.net)
	cmds := []command{
		{name: "nscn-nspawn-none", argv: run("none"), prepare: gc},
		{name: "nscn-nspawn-default", argv: run("default"), prepare: gc},
	}
	podman := false
	if _, err := exec.LookPath("podman"); err == nil && exec.CommandContext(ctx, "podman", "image", "exists", "busybox").Run() == nil {
		podman = true
		cmds = append(cmds,
			command{name: "podman-none", argv: []string{"podman", "run", "--rm", "--network=none", "busybox", "true"}},
			command{name: "podman-bridge", argv: []string{"podman", "run", "--rm", "--network=bridge", "busybox", "true"}},
		)
	}
	s, err := hyperfine(ctx, b.l.scratch, b.c.fast, 2, cmds...)
	if err != nil {
		b.r.failed(fig, err)
		return
	}
	if err := runQuiet(ctx, "sh", "-c", gc); err != nil {
		logf("collect the networking figure's pods: %v", err)
	}
	none, def := s[0].median, s[1].median
	extra := def - none
	b.r.add(row{figure: fig, ours: ms(def), peer: ms(none) + " --net=none", ratio: "+" + ms(extra), target: "≤ +100 ms", status: verdict(extra <= 100*time.Millisecond)})
	if podman {
		pn, pb := s[2].median, s[3].median
		b.r.add(row{figure: "3. podman run true, --network=bridge vs none", ours: ms(pb), peer: ms(pn) + " --network=none", ratio: "+" + ms(pb-pn), target: "-", status: info})
	}
	b.r.note("3: `nscn --insecure-options=image run --stage1-from-dir=stage1-nspawn.aci --net=NET IMAGE-ID --exec=/bin/true` with NET none (a namespace with only lo) and default (CNI ptp, 172.16.28.0/24, host-local, masquerading); data directory %s (%s); exited pods collected by `nscn gc --grace-period=0s` before each run (untimed), which also tears their networks down. The difference of the medians is the network's cost. %s", b.l.net, fsType(b.l.net), podmanNote(podman))
}

func podmanNote(measured bool) string {
	if measured {
		return "podman's rows run `podman run --rm --network=bridge|none busybox true` with the busybox image already in its store."
	}
	return "podman is not installed (or has no busybox image), so there is no podman row."
}
