//go:build functional

package security

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestStage0NeverRunsThePodsEntrypoints is class 1 of
// Documentation/security.md, from stage0's side: stage0 never executes
// what a pod can write. An app that got out of its root into the stage1's
// (simulated here from the host side, by writing into the pod
// directory's stage1/rootfs, the pod's writable copy of its stage1)
// replaces the stage1's entrypoints with a script that leaves a marker on
// the host.
// nscn run-prepared, enter, stop, gc and rm, all run as root on the host,
// must execute the stage1 from the store's immutable tree instead: the
// marker never appears, and each command still works.
func TestStage0NeverRunsThePodsEntrypoints(t *testing.T) {
	for _, f := range flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Run("run-prepared", func(t *testing.T) {
				e := newEnv(t)
				r := e.ok(prepareArgs(t, f, busyboxACI(t), "--exec=/bin/true")...)
				uuid := strings.TrimSpace(r.stdout)
				marker := filepath.Join(t.TempDir(), "pwned")
				restore := plantEntrypoints(t, e.podDir(), marker, stage1abi.AnnotationRun)
				t.Cleanup(restore)
				r = e.run("run-prepared", "--net=host", uuid)
				assertNoMarker(t, marker, "run-prepared")
				if r.code != 0 {
					t.Fatalf("run-prepared of a pod whose stage1 copy was tampered with: %s", r)
				}
				e.ok("rm", uuid)
			})

			t.Run("enter-stop-gc", func(t *testing.T) {
				e := newEnv(t)
				p := startSleeper(t, e, f)
				marker := filepath.Join(t.TempDir(), "pwned")
				restore := plantEntrypoints(t, e.podDir(), marker,
					stage1abi.AnnotationEnter, stage1abi.AnnotationStop, stage1abi.AnnotationGC)
				// If stage0 ran the planted stop, the pod still runs:
				// put the stage1 back so that the cleanup can stop it.
				t.Cleanup(func() { restore(); p.end(t, e) })

				r := e.run("enter", p.uuid, "/bin/sh", "-c", "echo inside")
				assertNoMarker(t, marker, "enter")
				if r.code != 0 || strings.TrimSpace(r.stdout) != "inside" {
					t.Errorf("enter: %s", r)
				}
				r = e.run("stop", p.uuid)
				assertNoMarker(t, marker, "stop")
				if r.code != 0 {
					t.Fatalf("stop: %s", r)
				}
				if !p.waitEnd(30 * time.Second) {
					t.Fatalf("the pod still runs after stop: %s", p.errb.String())
				}
				r = e.run("gc", "--grace-period=0s") // marks and sweeps
				assertNoMarker(t, marker, "gc")
				if r.code != 0 || !strings.Contains(r.stderr, "removed pod "+p.uuid) {
					t.Fatalf("gc: %s", r)
				}
			})

			t.Run("rm", func(t *testing.T) {
				e := newEnv(t)
				e.ok(runArgs(t, f, busyboxACI(t), "--exec=/bin/true")...)
				uuid := filepath.Base(e.podDir())
				marker := filepath.Join(t.TempDir(), "pwned")
				t.Cleanup(plantEntrypoints(t, e.podDir(), marker, stage1abi.AnnotationGC))
				r := e.run("rm", uuid)
				assertNoMarker(t, marker, "rm")
				if r.code != 0 {
					t.Fatalf("rm: %s", r)
				}
			})
		})
	}
}

// prepareArgs is the argv of `nscn prepare` with the flavor's stage1, then
// args.
func prepareArgs(t *testing.T, f flavor, args ...string) []string {
	t.Helper()
	return append([]string{"--insecure-options=image", "prepare", stage1Flag(t, f)}, args...)
}

// plantEntrypoints replaces the entrypoints the annotations name in the
// pod's copy of its stage1 (<pod dir>/stage1/rootfs) with a script that
// writes marker on the host, as an app that reached the stage1's root
// could. The paths come from the pod's stage1 manifest. A stage1 whose
// pod rootfs is empty (stage1abi.AnnotationPodRootfs, stage1-fly) has no
// copy there: the script is planted where the entrypoint would be, as such
// an app could too. It returns a function that puts the originals back.
func plantEntrypoints(t *testing.T, podDir, marker string, annotations ...string) (restore func()) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.Stage1ManifestRel)) //nolint:gosec // G304: a file of the test's pod
	if err != nil {
		t.Fatal(err)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$0 $*\" >> " + marker + "\nexit 0\n"
	var undo []func()
	for _, ann := range annotations {
		ep, ok := m.Annotations.Get(ann)
		if !ok {
			t.Fatalf("the stage1 has no %s", ann)
		}
		p := filepath.Join(podDir, stage1abi.Stage1RootfsRel, filepath.Clean("/"+ep))
		orig := p + ".orig"
		// Renames, not writes: the run entrypoint may be running.
		planted := true
		if err := os.Rename(p, orig); errors.Is(err, fs.ErrNotExist) {
			planted = false
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil { //nolint:gosec // G306: an executable, as the attacker would leave it
			t.Fatal(err)
		}
		undo = append(undo, func() {
			if !planted {
				_ = os.Remove(p)
				return
			}
			if _, err := os.Lstat(orig); err == nil {
				_ = os.Rename(orig, p)
			}
		})
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

// assertNoMarker fails the test if a planted entrypoint ran.
func assertNoMarker(t *testing.T, marker, after string) {
	t.Helper()
	b, err := os.ReadFile(marker) //nolint:gosec // G304: a file of the test
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	t.Errorf("%s executed the pod's own copy of the stage1 on the host: %q (%v)", after, b, err)
	_ = os.Remove(marker)
}

// sleeper is a pod run in the background whose app sleeps.
type sleeper struct {
	uuid      string
	cmd       *exec.Cmd
	out, errb *testutil.SyncBuffer
	done      chan struct{}
}

// startSleeper runs a busybox pod of flavor f whose app sleeps, and
// returns once it is ready.
func startSleeper(t *testing.T, e *env, f flavor) *sleeper {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := runArgs(t, f, "--uuid-file-save="+uuidFile, busyboxACI(t), "--exec=/bin/sh", "--", "-c", "exec sleep 300")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	p := &sleeper{cmd: e.cmd(ctx, args...), out: &testutil.SyncBuffer{}, errb: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	for deadline := time.Now().Add(30 * time.Second); p.uuid == ""; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(uuidFile); err == nil && len(bytes.TrimSpace(b)) > 0 { //nolint:gosec // G304: a file the test made
			p.uuid = string(bytes.TrimSpace(b))
		}
		if time.Now().After(deadline) {
			t.Fatal("the pod did not start")
		}
	}
	if r := e.run("status", "--wait-ready=30s", p.uuid); r.code != 0 {
		t.Fatalf("the pod did not become ready: %s", r)
	}
	return p
}

// waitEnd waits up to d for nscn run to end and says whether it did.
func (p *sleeper) waitEnd(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// end stops the pod if it still runs and waits for nscn run.
func (p *sleeper) end(t *testing.T, e *env) {
	t.Helper()
	if p.waitEnd(0) {
		return
	}
	e.run("stop", "--force", p.uuid)
	if !p.waitEnd(30 * time.Second) {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
