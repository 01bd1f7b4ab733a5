package cli

import (
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
// see them: a pod keeps its images and trees until it is gone.

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
