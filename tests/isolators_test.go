//go:build functional && nspawn

package tests

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestNspawnIsolatorsFromInside checks each isolator from inside the app,
// with busybox: the limit read back, the blocked syscall failing as
// configured, the capability missing.
func TestNspawnIsolatorsFromInside(t *testing.T) {
	e := newEnv(t)
	status := `grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status`
	tests := []struct {
		name   string
		flags  []string
		script string
		code   int
		check  func(t *testing.T, r result)
	}{
		{name: "defaults", script: status, check: func(t *testing.T, r result) {
			st := procStatus(r.stdout)
			if st["CapBnd"] != defaultCaps || st["CapEff"] != defaultCaps || st["NoNewPrivs"] != "0" || st["Seccomp"] != "2" {
				t.Fatalf("status %v, want the default bounding set %s, no_new_privs 0, a seccomp filter", st, defaultCaps)
			}
		}},
		{
			name: "memory limit", flags: []string{"--memory=64Mi"},
			script: `cat /sys/fs/cgroup/memory/memory.limit_in_bytes; grep -c ':memory:/nscn/' /proc/self/cgroup`,
			check: func(t *testing.T, r result) {
				if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != "67108864" || got[1] != "1" {
					t.Fatalf("memory limit seen by the app: %q, want 67108864 in its own nscn cgroup", r.stdout)
				}
				if !strings.Contains(r.stderr, "enforced: resource/memory") {
					t.Fatalf("run did not report the memory isolator: %q", r.stderr)
				}
			},
		},
		{
			name: "cpu quota and shares", flags: []string{"--cpu=250m", "--cpu-shares=256"},
			script: `echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares)`,
			check: func(t *testing.T, r result) {
				if got := strings.TrimSpace(r.stdout); got != "25000 100000 256" {
					t.Fatalf("cpu limits seen by the app: %q, want 25000 100000 256", got)
				}
			},
		},
		{
			name: "seccomp remove with errno", flags: []string{"--seccomp=mode=remove,errno=ENOTSUP,chmod,fchmodat,fchmod"},
			script: `chmod 600 /tmp 2>&1; echo status=$?`,
			check: func(t *testing.T, r result) {
				if !strings.Contains(r.stdout, "not supported") || !strings.Contains(r.stdout, "status=1") {
					t.Fatalf("chmod under the filter printed %q, want ENOTSUP", r.stdout)
				}
			},
		},
		{
			name: "seccomp remove kills", flags: []string{"--seccomp=mode=remove,chmod,fchmodat,fchmod"},
			// The shell's child dies of SIGSYS; the shell reports 128+31.
			script: `chmod 600 /tmp; echo status=$?`,
			check: func(t *testing.T, r result) {
				if !strings.Contains(r.stdout, "status=159") {
					t.Fatalf("chmod under a kill filter printed %q, want death by SIGSYS (159)", r.stdout)
				}
			},
		},
		{
			name: "capability removed", flags: []string{"--caps-remove=CAP_CHOWN"},
			script: status + `; chown 1 /tmp 2>&1; echo status=$?`,
			check: func(t *testing.T, r result) {
				st := procStatus(r.stdout)
				if capBit(t, st["CapBnd"], capChown) || capBit(t, st["CapEff"], capChown) || !capBit(t, st["CapBnd"], 1) {
					t.Fatalf("CAP_CHOWN still there or too much dropped: %v", st)
				}
				if !strings.Contains(r.stdout, "Operation not permitted") || !strings.Contains(r.stdout, "status=1") {
					t.Fatalf("chown without CAP_CHOWN printed %q", r.stdout)
				}
			},
		},
		{
			name: "capability retained", flags: []string{"--caps-retain=CAP_SYS_ADMIN"},
			script: status,
			check: func(t *testing.T, r result) {
				st := procStatus(r.stdout)
				if st["CapBnd"] != "0000000000200000" || !capBit(t, st["CapEff"], capSysAdm) {
					t.Fatalf("status %v, want only CAP_SYS_ADMIN", st)
				}
			},
		},
		{
			name: "oom score adj", flags: []string{"--oom-score-adj=300"}, script: `cat /proc/self/oom_score_adj`,
			check: func(t *testing.T, r result) {
				if strings.TrimSpace(r.stdout) != "300" {
					t.Fatalf("oom_score_adj %q, want 300", r.stdout)
				}
			},
		},
		{
			name: "restricted paths", script: `echo 1 > /proc/sys/kernel/ns_last_pid 2>&1; echo status=$?; ls /sys/firmware | wc -l`,
			check: func(t *testing.T, r result) {
				if got := strings.Fields(r.stdout); len(got) != 2 || got[0] != "status=1" || got[1] != "0" {
					t.Fatalf("restricted paths: %q (stderr %s), want /proc/sys read-only and /sys/firmware empty", r.stdout, r.stderr)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.nspawnSh(tt.script, tt.flags...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", r.code, tt.code, r.stdout, r.stderr)
			}
			tt.check(t, r)
		})
	}
	t.Run("no new privileges from the image", func(t *testing.T) {
		id := strings.TrimSpace(e.ok("--insecure-options=image", "fetch", busybox(t)).stdout)
		full := strings.TrimSpace(e.ok("fetch", "--full", id).stdout)
		pm := map[string]any{
			"acKind": "PodManifest", "acVersion": "0.8.11",
			"apps": []any{map[string]any{
				"name": "nnp", "image": map[string]any{"id": full},
				"app": map[string]any{
					"exec": []string{"/bin/sh", "-c", status}, "user": "0", "group": "0",
					"isolators": []any{map[string]any{"name": "os/linux/no-new-privileges", "value": true}},
				},
			}},
		}
		b, _ := json.Marshal(pm)
		p := filepath.Join(t.TempDir(), "pod.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		r := e.run("--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t), "--pod-manifest", p)
		if st := procStatus(r.stdout); r.code != 0 || st["NoNewPrivs"] != "1" {
			t.Fatalf("exit %d, status %v (stderr %s), want NoNewPrivs 1", r.code, st, r.stderr)
		}
		if !strings.Contains(r.stderr, "os/linux/no-new-privileges") {
			t.Fatalf("run did not report the isolator: %q", r.stderr)
		}
	})
	t.Run("disable flags", func(t *testing.T) {
		// No filter at all (systemd-nspawn's own is off too), every
		// capability, and /sys/firmware as the host has it.
		host, err := os.ReadDir("/sys/firmware")
		if err != nil {
			t.Fatal(err)
		}
		r := e.run("--insecure-options=image,seccomp,paths,capabilities", "run", "--net=host", "--stage1-path="+nspawnACI(t),
			busybox(t), "--exec=/bin/sh", "--", "-c", status+`; echo firmware=$(ls /sys/firmware | wc -l)`)
		st := procStatus(r.stdout)
		if r.code != 0 || st["Seccomp"] != "0" || !capBit(t, st["CapBnd"], capSysAdm) || !strings.Contains(r.stdout, "firmware="+strconv.Itoa(len(host))+"\n") {
			t.Fatalf("exit %d stdout %q stderr %q; want no filter, CAP_SYS_ADMIN and %d entries in /sys/firmware", r.code, r.stdout, r.stderr, len(host))
		}
		if !strings.Contains(r.stderr, "ignored: capabilities") {
			t.Fatalf("run did not report the disabled restrictions: %q", r.stderr)
		}
	})
	assertPodsGone(t, e)
}

func TestNspawnIsolatorFlagErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		flag string
		want string
	}{
		{name: "seccomp mode", flag: "--seccomp=mode=deny,chmod", want: "--seccomp"},
		{name: "seccomp errno", flag: "--seccomp=mode=remove,errno=nope,chmod", want: "errno"},
		{name: "cpu shares", flag: "--cpu-shares=0", want: "--cpu-shares"},
		{name: "oom score adj", flag: "--oom-score-adj=5000", want: "--oom-score-adj"},
		{name: "caps", flag: "--caps-retain=CAP_", want: "--caps-retain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("--insecure-options=image", "run", "--stage1-path="+nspawnACI(t), busybox(t), tt.flag, "--exec=/bin/true")
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("exit %d stderr %q, want exit 2 and one line mentioning %q", r.code, r.stderr, tt.want)
			}
		})
	}
	// A capability nscn does not know is refused by stage0 too, before
	// any pod exists.
	r := e.run("--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t), busybox(t), "--caps-retain=CAP_NOPE", "--exec=/bin/echo", "--", "ran")
	if r.code != 2 || !strings.Contains(r.stderr, "CAP_NOPE") || strings.Contains(r.stdout, "ran") {
		t.Fatalf("unknown capability: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	assertPodsGone(t, e)
}

// TestNspawnEnterIsConfinedLikeTheApp enters a running app and compares
// what the entered command sees with what the app saw.
func TestNspawnEnterIsConfinedLikeTheApp(t *testing.T) {
	e := newEnv(t)
	probe := `grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; grep -E ':(memory|cpu):' /proc/self/cgroup; echo oom=$(cat /proc/self/oom_score_adj); echo limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); chmod 600 /tmp 2>/dev/null; echo chmod=$?`
	p := startPod(t, e, 15*time.Second, []string{"ready"}, nspawnRunArgs(t,
		busybox(t), "--name=app", "--memory=48Mi", "--cpu-shares=300",
		"--caps-remove=CAP_CHOWN,CAP_KILL", "--seccomp=mode=remove,errno=ENOTSUP,chmod,fchmodat,fchmod", "--oom-score-adj=250",
		"--exec=/bin/sh", "--", "-c", probe+"; echo ready; exec sleep 300")...)
	uuid := p.uuid
	app := strings.TrimSuffix(p.out.String(), "ready\n")
	r := e.ok("enter", uuid, "/bin/sh", "-c", probe)
	if r.stdout != app {
		t.Fatalf("entered command sees\n%s\nthe app saw\n%s", r.stdout, app)
	}
	st := procStatus(app)
	if capBit(t, st["CapBnd"], capChown) || st["Seccomp"] != "2" || !strings.Contains(app, "limit=50331648") ||
		!strings.Contains(app, "oom=250") || !strings.Contains(app, "chmod=1") || !strings.Contains(app, ":memory:/nscn/"+uuid+"/app") {
		t.Fatalf("the app is not confined as asked:\n%s", app)
	}
	// The entered command is in the app's cgroup, seen from the host too.
	r = e.ok("enter", uuid, "/bin/sh", "-c", "sleep 0.1; cat /sys/fs/cgroup/memory/cgroup.procs | wc -l")
	if n, _ := strconv.Atoi(strings.TrimSpace(r.stdout)); n < 3 {
		t.Fatalf("the app's cgroup holds %q processes, want the app, the entered shell and its child", r.stdout)
	}
	e.ok("stop", "--force", uuid)
	_ = p.wait()
	assertPodsGone(t, e)
}

// TestNspawnGCRemovesAppCgroupsAfterKill kills the stage1's run process
// with SIGKILL and checks that gc still removes the app's cgroups, which
// run created on the host.
func TestNspawnGCRemovesAppCgroupsAfterKill(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 15*time.Second, []string{"ready"}, nspawnRunArgs(t,
		busybox(t), "--memory=32Mi", "--cpu=100m", "--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 300")...)
	uuid := p.uuid
	rec, err := os.ReadFile(filepath.Join(e.dir, "pods", "run", uuid, "nspawn-isolation.json")) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	var iso struct {
		Cgroups map[string][]string `json:"cgroups"`
	}
	if err := json.Unmarshal(rec, &iso); err != nil {
		t.Fatal(err)
	}
	dirs := iso.Cgroups["busybox"]
	if len(dirs) != 2 {
		t.Fatalf("app cgroups %v, want one in the memory and one in the cpu hierarchy", dirs)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
			t.Fatalf("app cgroup %s: %v", d, err)
		}
	}
	ppid, err := os.ReadFile(filepath.Join(e.dir, "pods", "run", uuid, "ppid")) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	// nscn run has become the stage1's run entrypoint: kill it.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	// systemd-nspawn gets SIGTERM (parent death) and stops the pod.
	nspawn := filepath.Join("/proc", strings.TrimSpace(string(ppid)))
	for range 150 {
		if _, err := os.Stat(nspawn); err != nil { //nolint:gosec // G703: a file the test made
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertPodsGone(t, e)
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("app cgroup %s left after gc (%v)", d, err)
		}
		if _, err := os.Stat(filepath.Dir(d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod cgroup %s left after gc (%v)", filepath.Dir(d), err)
		}
	}
}

// TestNspawnEnterRunsAsTheAppUser checks that enter runs the command as
// the app's user and groups, with the app's (empty) capabilities.
func TestNspawnEnterRunsAsTheAppUser(t *testing.T) {
	e := newEnv(t)
	p := startPod(t, e, 15*time.Second, []string{"ready"}, nspawnRunArgs(t,
		busybox(t), "--user=user", "--group=user", "--supplementary-gids=1001",
		"--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 300")...)
	uuid := p.uuid
	r := e.ok("enter", uuid, "/bin/sh", "-c", `echo $(id -u) $(id -g) $(id -G); grep '^CapEff:' /proc/self/status`)
	if got := strings.Join(strings.Fields(r.stdout), " "); got != "1000 1000 1000 1001 CapEff: 0000000000000000" {
		t.Fatalf("entered command: %q, want the app's user and groups without capabilities", got)
	}
	e.ok("stop", "--force", uuid)
	_ = p.wait()
	assertPodsGone(t, e)
}
