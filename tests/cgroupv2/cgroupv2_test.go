//go:build vm

package cgroupv2

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/testutil/vm"
)

// TestPureV2Host checks that the VM is what the other tests need: only
// the unified hierarchy mounted, no controller left on a v1 hierarchy,
// and cpu, memory and pids available at its root. Without this, a pod
// test could pass on a layout it does not claim to test.
func TestPureV2Host(t *testing.T) {
	res := boot(t, vm.Script{Name: "host", Body: `
section mounts; awk '$3 ~ /^cgroup/ { print $2, $3 }' /proc/mounts
section v1-bound; awk 'NR > 1 && $2 != 0 { print $1 }' /proc/cgroups
section controllers; cat /sys/fs/cgroup/cgroup.controllers
section self; cat /proc/self/cgroup
section overlay; grep -w overlay /proc/filesystems
section no-net; ls /sys/class/net
`})
	s := result(t, res, "host")
	if s["mounts"] != "/sys/fs/cgroup cgroup2" {
		t.Errorf("cgroup mounts %q, want only cgroup2 at /sys/fs/cgroup", s["mounts"])
	}
	if s["v1-bound"] != "" {
		t.Errorf("controllers bound to v1 hierarchies: %q", s["v1-bound"])
	}
	ctrls := strings.Fields(s["controllers"])
	for _, c := range []string{"cpu", "memory", "pids"} {
		if !slices.Contains(ctrls, c) {
			t.Errorf("controller %s missing on the unified hierarchy: %q", c, s["controllers"])
		}
	}
	if s["self"] != "0::/" {
		t.Errorf("/proc/self/cgroup %q, want the v2 root only (0::/)", s["self"])
	}
	if !strings.Contains(s["overlay"], "overlay") {
		t.Errorf("overlayfs not available: the module did not load")
	}
	if s["no-net"] != "lo" {
		t.Errorf("network interfaces %q, want only lo: the VM has no network device", s["no-net"])
	}
}

// TestRunExitStatusAndGC runs a pod under each stage1 on the v2 host: nscn
// run exits with the app's status, and gc removes every cgroup the pods
// made (nscn's and systemd-nspawn's) and every mount.
func TestRunExitStatusAndGC(t *testing.T) {
	pods := []struct {
		name  string
		flags string
	}{
		{name: "fly", flags: `--stage1-path="$NSCN_STAGE1_FLY_ACI"`},
		{name: "nspawn-host", flags: `--net=host --stage1-path="$NSCN_STAGE1_NSPAWN_ACI"`},
		{name: "nspawn-none", flags: `--net=none --stage1-path="$NSCN_STAGE1_NSPAWN_ACI"`},
		// Limits give the app a cgroup of its own: gc must remove it too.
		{name: "nspawn-limits", flags: `--net=none --stage1-path="$NSCN_STAGE1_NSPAWN_ACI" --memory=48Mi --cpu=200m`},
		// A user namespace on a delegated v2 cgroup, with limits.
		{name: "nspawn-private-users", flags: `--net=none --private-users --stage1-path="$NSCN_STAGE1_NSPAWN_ACI" --memory=48Mi`},
	}
	var b strings.Builder
	b.WriteString("find /sys/fs/cgroup -type d | sort >/tmp/cgroups.before\n")
	for _, p := range pods {
		fmt.Fprintf(&b, "nscnRun %s run %s \"$NSCN_IMAGES/busybox.aci\" --exec=/bin/sh -- -c 'echo app-%s; echo uid_map $(cat /proc/self/uid_map); exit 7'\n", p.name, p.flags, p.name)
	}
	b.WriteString(`section pod-cgroups; find /sys/fs/cgroup/nscn -type d 2>/dev/null
nscnRun gc-mark gc --grace-period=0s
nscnRun gc-sweep gc --grace-period=0s
nscnRun list list --no-legend
section left-cgroups; find /sys/fs/cgroup -type d | sort | grep -vxF -f /tmp/cgroups.before
section left-mounts; grep /var/lib/nscn /proc/mounts
`)
	s := result(t, boot(t, vm.Script{Name: "pods", Body: b.String()}), "pods")

	for _, p := range pods {
		t.Run(p.name, func(t *testing.T) {
			if s[p.name+".status"] != "7" || !strings.Contains(s[p.name+".stdout"], "app-"+p.name) {
				t.Fatalf("nscn run: exit %s, stdout %q; want 7 and the app's output\nstderr:\n%s",
					s[p.name+".status"], s[p.name+".stdout"], s[p.name+".stderr"])
			}
			host := strings.Contains(s[p.name+".stdout"], "uid_map 0 0 4294967295")
			if want := !strings.Contains(p.flags, "--private-users"); host != want {
				t.Errorf("the app's uid_map: %q (the host's: %v, want %v)", s[p.name+".stdout"], host, want)
			}
		})
	}
	t.Logf("cgroups of the exited pods before gc:\n%s", s["pod-cgroups"])
	for _, step := range []string{"gc-mark", "gc-sweep", "list"} {
		if s[step+".status"] != "0" {
			t.Errorf("nscn %s: exit %s\nstderr:\n%s", step, s[step+".status"], s[step+".stderr"])
		}
	}
	if s["list.stdout"] != "" {
		t.Errorf("pods left after gc:\n%s", s["list.stdout"])
	}
	// The shared parent nscn may stay, empty: another nscn may be
	// creating a pod in it.
	var left []string
	for l := range strings.SplitSeq(s["left-cgroups"], "\n") {
		if l != "" && l != "/sys/fs/cgroup/nscn" {
			left = append(left, l)
		}
	}
	if len(left) != 0 {
		t.Errorf("cgroups left after gc:\n%s", strings.Join(left, "\n"))
	}
	if s["left-mounts"] != "" {
		t.Errorf("mounts left after gc:\n%s", s["left-mounts"])
	}
}

// TestNspawnResourceLimits runs stage1-nspawn pods with resource limits
// on the v2 host: the app reads its own limits from its cgroup2 at
// /sys/fs/cgroup (memory.max, cpu.max, cpu.weight), the memory limit
// holds (a process that touches more is killed, one that touches less
// is not), and run does not report the limits as ignored. Each app also
// writes its cgroup and that cgroup's controllers to stderr, so that a
// failure shows where the app landed.
func TestNspawnResourceLimits(t *testing.T) {
	const where = `echo "cgroup: $(cat /proc/self/cgroup); controllers: $(cat /sys/fs/cgroup/cgroup.controllers)" >&2; `
	// exactly is the check of the cases that read their limits: the app
	// exits 0 having printed want.
	exactly := func(want string) func(stdout, status string) string {
		return func(stdout, status string) string {
			if status != "0" || strings.TrimSpace(stdout) != want {
				return fmt.Sprintf("want exit 0 and %q", want)
			}
			return ""
		}
	}
	tests := []struct {
		name   string
		flags  string
		script string
		check  func(stdout, status string) string // what is wrong, or ""
	}{
		{name: "memory-and-cpu", flags: "--memory=64Mi --cpu=500m", script: "cat memory.max cpu.max", check: exactly("67108864\n50000 100000")},
		{name: "cpu-shares", flags: "--cpu-shares=512", script: "cat cpu.weight", check: exactly(fmt.Sprint(cgroup.SharesToWeight(512)))},
		// dd holds a buffer of bs bytes and fills it from /dev/zero: 16
		// MiB fits under the limit, 48 MiB does not (the VM has no swap),
		// and the kernel kills dd, the largest process of the cgroup. What
		// follows is the pod's systemd's choice (OOMPolicy=): with "stop",
		// its default, the app's unit is stopped (the shell dies of
		// SIGTERM); with "continue" the shell goes on.
		{
			name: "memory-enforced", flags: "--memory=32Mi",
			script: "dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null && echo small-ok; dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null && echo big-ok; echo done",
			check: func(stdout, _ string) string {
				if !strings.HasPrefix(stdout, "small-ok\n") && stdout != "small-ok" || strings.Contains(stdout, "big-ok") {
					return "want small-ok, and no big-ok: 48 MiB must not fit under a 32 MiB limit"
				}
				return ""
			},
		},
	}
	var b strings.Builder
	for _, tt := range tests {
		fmt.Fprintf(&b, "nscnRun %s run --net=host --stage1-path=\"$NSCN_STAGE1_NSPAWN_ACI\" \"$NSCN_IMAGES/busybox.aci\" %s --exec=/bin/sh -- -c '%scd /sys/fs/cgroup && %s'\n",
			tt.name, tt.flags, where, tt.script)
	}
	s := result(t, boot(t, vm.Script{Name: "limits", Body: b.String()}), "limits")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := s[tt.name+".stdout"], s[tt.name+".stderr"]
			if msg := tt.check(stdout, s[tt.name+".status"]); msg != "" {
				t.Errorf("app printed %q (exit %s) for %q; %s\nstderr:\n%s", stdout, s[tt.name+".status"], tt.script, msg, stderr)
			}
			if strings.Contains(stderr, "resource limits ignored") {
				t.Errorf("run ignored the limits on the v2 host:\n%s", stderr)
			}
		})
	}
}

// TestNspawnEnterAndKilledRun runs a stage1-nspawn pod with a memory limit
// in the background on the v2 host: nscn enter runs a command in the
// app's cgroup, which sees the app's limit; then nscn run is killed
// (SIGKILL), systemd-nspawn stops the pod, and gc removes every cgroup and
// mount of it, from the pod's record alone.
func TestNspawnEnterAndKilledRun(t *testing.T) {
	s := result(t, boot(t, vm.Script{Name: "enter", Body: `
# Not through the nscn function: $! must be nscn's own PID.
"$NSCN_BIN" --dir /var/lib/nscn --insecure-options=image run --uuid-file-save=/tmp/pod.uuid --net=none \
	--stage1-path="$NSCN_STAGE1_NSPAWN_ACI" "$NSCN_IMAGES/busybox.aci" --memory=64Mi \
	--exec=/bin/sh -- -c 'echo app-started; exec sleep 600' >/tmp/pod.out 2>&1 &
runpid=$!
for _ in $(seq 90); do [ -s /tmp/pod.uuid ] && break; sleep 1; done
uuid=$(cat /tmp/pod.uuid 2>/dev/null)
nscnRun ready status --wait-ready=90s "$uuid"
nscnRun enter enter "$uuid" /bin/sh -c 'cat /sys/fs/cgroup/memory.max; cat /proc/self/cgroup'
section app-cgroup
for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = sleep ] && cat "$p/cgroup"; done
ppid=$(cat "/var/lib/nscn/pods/run/$uuid/ppid")
kill -KILL "$runpid"
for _ in $(seq 90); do [ -d "/proc/$ppid" ] || break; sleep 1; done
section nspawn-gone; [ -d "/proc/$ppid" ] && echo "systemd-nspawn $ppid still runs" || echo yes
section pod-output; cat /tmp/pod.out
nscnRun gc-mark gc --grace-period=0s
nscnRun gc-sweep gc --grace-period=0s
nscnRun list list --no-legend
section left-cgroups; find /sys/fs/cgroup/nscn -mindepth 1 -type d 2>/dev/null
section left-mounts; grep /var/lib/nscn /proc/mounts
section left-procs; grep -l "$uuid" /proc/[0-9]*/cgroup 2>/dev/null
`}), "enter")
	if s["ready.status"] != "0" {
		t.Fatalf("the pod did not get ready: %s\npod output:\n%s", s["ready.stderr"], s["pod-output"])
	}
	t.Run("enter", func(t *testing.T) {
		lines := strings.Split(s["enter.stdout"], "\n")
		if s["enter.status"] != "0" || len(lines) != 2 || lines[0] != "67108864" {
			t.Fatalf("enter printed %q (exit %s), want the app's memory.max 67108864 and its cgroup\nstderr:\n%s",
				s["enter.stdout"], s["enter.status"], s["enter.stderr"])
		}
		// The app's cgroup namespace is rooted at its unit's cgroup;
		// enter is cloned into that cgroup, so it sees the same root.
		if lines[1] != "0::/" {
			t.Errorf("enter's /proc/self/cgroup %q, want 0::/ (the app's cgroup namespace); the app is in %s", lines[1], s["app-cgroup"])
		}
	})
	t.Run("gc after a killed run", func(t *testing.T) {
		if s["nspawn-gone"] != "yes" {
			t.Fatalf("%s after nscn run was killed", s["nspawn-gone"])
		}
		for _, step := range []string{"gc-mark", "gc-sweep", "list"} {
			if s[step+".status"] != "0" {
				t.Errorf("nscn %s: exit %s\nstderr:\n%s", step, s[step+".status"], s[step+".stderr"])
			}
		}
		for _, what := range []string{"list.stdout", "left-cgroups", "left-mounts", "left-procs"} {
			if s[what] != "" {
				t.Errorf("%s after gc:\n%s", what, s[what])
			}
		}
	})
}
