package cli

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/blob"
)

// The tests here are issue 11's containment rules as the pod commands
// see them: a pod's stage1 runs from its tree in the store, and a pod
// keeps its images and trees until it is gone.

func (f *podFixture) store() *store.Store {
	f.t.Helper()
	s, err := store.Open(f.t.Context(), f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// stage1Key is the key of the fake stage1's image.
func (f *podFixture) stage1Key() string {
	f.t.Helper()
	return blob.KeyFromID(f.stage1Tree(5).ImageIDs[0])
}

func TestImageRmAndGCLeavePodImages(t *testing.T) {
	states := []struct {
		name  string
		state pod.State
	}{
		{name: "prepared", state: pod.Prepared},
		{name: "running", state: pod.Running},
		{name: "exited", state: pod.Exited},
		{name: "aborted prepare", state: pod.AbortedPrepare},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			f := newPodFixture(t)
			appKey, appTree := f.testImage("example.com/web")
			otherKey, _ := f.testImage("example.com/other")
			p := f.mkPod(podSpec{state: st.state, treeKey: appTree.Key})
			if st.state == pod.AbortedPrepare {
				// An aborted prepare may have recorded its trees.
				f.writeStage1(p.Path)
				writeTestFile(t, filepath.Join(p.Path, "appsinfo", "web", "treeStoreID"), appTree.Key, 0o644)
			}
			s1Key := f.stage1Key()

			for _, key := range []string{appKey, s1Key[:len("sha512-")+6]} {
				_, errOut, err := f.run("image", "rm", key)
				checkErr(t, err, errdefs.ErrFailedPrecondition, 1)
				if !strings.Contains(errOut, "in use by pod "+p.UUID) || !strings.Contains(errOut, "nscn rm "+p.UUID) || strings.Count(errOut, "\n") != 1 {
					t.Fatalf("image rm %s: stderr = %q, want one line naming pod %s and nscn rm", key, errOut, p.UUID)
				}
			}
			_, errOut, err := f.run("image", "gc", "--grace-period=0s")
			if err != nil {
				t.Fatalf("image gc: %v\n%s", err, errOut)
			}
			if got, want := f.storedKeys(), []string{appKey, s1Key}; !sameSet(got, want) {
				t.Fatalf("images after image gc = %v, want %v (%s collected)", got, want, otherKey)
			}
			if _, err := f.store().Trees.Get(t.Context(), appTree.Key); err != nil {
				t.Fatalf("image gc took the pod's app tree: %v", err)
			}
			if _, err := f.store().Trees.Get(t.Context(), f.stage1Tree(5).Key); err != nil {
				t.Fatalf("image gc took the pod's stage1 tree: %v", err)
			}

			if st.state == pod.Running {
				return // rm refuses it
			}
			f.mustRun("rm", p.UUID)
			f.mustRun("image", "rm", appKey, s1Key)
			if got := f.storedKeys(); len(got) != 0 {
				t.Fatalf("images left: %v", got)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestPodsStage1TreeGone: a pod's stage1 tree deleted by hand is rendered
// again from the stored image; with the image gone too, gc and rm keep the
// pod and say what to fetch, and enter and stop refuse, running nothing.
func TestPodsStage1TreeGone(t *testing.T) {
	f := newPodFixture(t)
	s1Tree, s1Key := f.stage1Tree(5), f.stage1Key()
	exited := f.mkPod(podSpec{state: pod.Exited})
	running := f.mkPod(podSpec{state: pod.Running})
	gcCall := strings.Join([]string{filepath.Join(f.dir, "pods", "exited-garbage", exited.UUID), "--local-config=" + f.local, exited.UUID}, "|")
	dropTree := func(t *testing.T) {
		t.Helper()
		if err := f.store().Trees.Remove(t.Context(), s1Tree.Key); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatal(err)
		}
	}

	// The image is still there: every command renders the tree again.
	dropTree(t)
	if out := f.mustRun("enter", running.UUID, "true"); out != "enter ran\n" {
		t.Fatalf("enter: %q", out)
	}
	dropTree(t)
	f.mustRun("stop", running.UUID)

	// The image is gone too (image rm, with no pod holding the tree).
	dropTree(t)
	if _, err := f.store().Remove(t.Context(), s1Key, store.References{}); err != nil {
		t.Fatal(err)
	}
	f.resetCalls()
	for _, args := range [][]string{{"enter", running.UUID, "true"}, {"stop", running.UUID}} {
		_, _, err := f.run(args...)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "fetch the pod's stage1 image example.com/stage1-fake") {
			t.Fatalf("%s: %v, want a FailedPrecondition saying which image to fetch", args[0], err)
		}
	}
	for _, args := range [][]string{{"rm", exited.UUID}, {"gc", "--grace-period=0s"}} {
		_, errOut, err := f.run(args...)
		if msg := errOut + errString(err); err == nil || !strings.Contains(msg, "kept the pod for a later gc") || !strings.Contains(msg, "fetch the pod's stage1 image example.com/stage1-fake") {
			t.Fatalf("%s: %v, stderr %q; want the pod kept, and which image to fetch", args[0], err, errOut)
		}
		if got := podState(t, f.dir, exited.UUID); got != pod.ExitedGarbage {
			t.Fatalf("%s left the pod %s, want it kept as exited garbage", args[0], got)
		}
	}
	if c := f.calls("enter"); len(c) != 0 {
		t.Fatalf("enter ran: %q", c)
	}
	if c := f.calls("gc"); len(c) != 0 {
		t.Fatalf("gc ran: %q", c)
	}

	// The image is back: the pod goes, with its stage1 gc.
	delete(f.stage1Trees, 5)
	if f.stage1Tree(5).Key != s1Tree.Key {
		t.Fatal("the stage1 renders to another tree")
	}
	dropTree(t)
	f.mustRun("rm", exited.UUID)
	if podExists(t, f.dir, exited.UUID) {
		t.Fatal("pod still exists")
	}
	if c := f.calls("gc"); !slices.Equal(c, []string{gcCall}) {
		t.Fatalf("stage1 gc calls = %q, want [%q]", c, gcCall)
	}
}

// TestPodsStage1TreeTampered: an entrypoint of the store's tree that fails
// the checks (writable by others) is refused, not run, by every command,
// and gc keeps the pod.
func TestPodsStage1TreeTampered(t *testing.T) {
	f := newPodFixture(t)
	running := f.mkPod(podSpec{state: pod.Running})
	exited := f.mkPod(podSpec{state: pod.Exited})
	for _, ep := range fakeEntrypoints {
		p := filepath.Join(f.stage1Tree(5).Rootfs, ep)
		if err := os.Chmod(p, 0o777); err != nil { //nolint:gosec // G302: the tampering under test
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"enter", running.UUID, "true"}, {"stop", running.UUID}, {"rm", exited.UUID}} {
		_, errOut, err := f.run(args...)
		if err == nil || !strings.Contains(err.Error()+errOut, "is writable by group or others") {
			t.Fatalf("%s: %v, stderr %q; want a refusal of the writable entrypoint", args[0], err, errOut)
		}
	}
	for _, name := range []string{"enter", "stop", "gc"} {
		if c := f.calls(name); len(c) != 0 {
			t.Fatalf("%s ran: %q", name, c)
		}
	}
	if got := podState(t, f.dir, exited.UUID); got != pod.ExitedGarbage {
		t.Fatalf("rm left the pod %s, want it kept as exited garbage", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
