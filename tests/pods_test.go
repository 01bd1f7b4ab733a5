//go:build functional && (nspawn || kvm)

package tests

// Helpers of the flavors whose pods run in the background under a
// supervisor of their own (systemd in a container or in a VM): nspawn
// and kvm.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/e2e"
)

// bgPod is an nscn run in the background.
type bgPod struct {
	uuid      string
	cmd       *exec.Cmd
	out, errb *testutil.SyncBuffer
	done      chan struct{} // closed when nscn run has ended
	err       error         // what waiting for nscn run returned, once done
}

// startPod starts nscn with args (everything after e's own flags, "run"
// among them; startPod adds --uuid-file-save) in the background, and
// returns once the pod's UUID is saved and its stdout holds every string
// of ready, failing the test after wait. A pod still running when the
// test ends is stopped with stop --force.
func startPod(t *testing.T, e *env, wait time.Duration, ready []string, args ...string) *bgPod {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	i := slices.Index(args, "run")
	if i < 0 {
		i = slices.Index(args, "sandbox") // nscn app sandbox
	}
	if i < 0 {
		t.Fatalf("startPod: no run in %q", args)
	}
	args = slices.Insert(slices.Clone(args), i+1, "--uuid-file-save="+uuidFile)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p := &bgPod{cmd: e.cmd(ctx, args...), out: &testutil.SyncBuffer{}, errb: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, e) })
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		b, err := os.ReadFile(uuidFile) //nolint:gosec // G304: a file the test made
		if err == nil && len(bytes.TrimSpace(b)) > 0 && containsAll(p.out.String(), ready) {
			p.uuid = strings.TrimSpace(string(b))
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("pod ended before it was ready: %s %s", p.out.String(), p.errb.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("pod did not start: %s %s", p.out.String(), p.errb.String())
	return nil
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// wait waits for nscn run to end and returns what waiting for it did.
func (p *bgPod) wait() error {
	<-p.done
	return p.err
}

// stop stops the pod and waits for nscn run to end.
func (p *bgPod) stop(t *testing.T, e *env) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if p.uuid != "" {
		e.run("stop", "--force", p.uuid)
	} else {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// assertPodsGone checks, after nscn gc, that no pod of e left a mount
// under the data dir, a process or a cgroup. It looks only at e's own
// pods: other suites may run pods on the same host at the same time.
func assertPodsGone(t *testing.T, e *env) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	var uuids []string
	for _, d := range dirs {
		uuids = append(uuids, filepath.Base(d))
	}
	r := e.ok("gc", "--grace-period=0s")
	assertNoPods(t, e)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), e.dir) {
		t.Fatalf("mounts left under %s after gc:\n%s\n(gc: %s)", e.dir, mi, r.stderr)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))    //nolint:gosec // G304: a /proc file
		args, _ := os.ReadFile(filepath.Join(p, "cmdline")) //nolint:gosec // G304: a /proc file
		for _, u := range uuids {
			if strings.Contains(string(cg), u) {
				t.Fatalf("process %s of pod %s left after gc: %q", filepath.Base(p), u, args)
			}
		}
		if strings.Contains(string(args), e.dir) {
			t.Fatalf("process %s left after gc: %q", filepath.Base(p), args)
		}
	}
	for _, u := range uuids {
		if left := e2e.PodCgroupsLeft(u); len(left) > 0 {
			t.Fatalf("pod cgroups %v left after gc (gc: %s)", left, r.stderr)
		}
	}
}

// onlyPod returns the UUID of the env's only pod.
func nspawnOnlyPod(t *testing.T, e *env) string {
	t.Helper()
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*-*-*-*-*"))
	if len(pods) != 1 {
		t.Fatalf("want one pod, have %v", pods)
	}
	return filepath.Base(pods[0])
}
