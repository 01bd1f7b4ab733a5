package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/store/index"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// layerTar is an uncompressed layer holding one file.
func layerTar(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importOCI stores an OCI image of the given layers (plain tars, so the
// digest is the diff ID) and returns its entry.
func importOCI(t *testing.T, s *Store, name string, layers ...[]byte) *index.Image {
	t.Helper()
	ctx := context.Background()
	cfg := []byte(`{"config":{},"name":"` + name + `"}`)
	o := &index.OCIImage{Reference: "oci:" + name, Digest: sha([]byte(name)), Config: sha(cfg)}
	release, err := s.HoldOCIBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := s.OCIBlobs.Ingest(ctx, bytes.NewReader(cfg), o.Config, int64(len(cfg))); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if err := s.OCIBlobs.Ingest(ctx, bytes.NewReader(l), sha(l), int64(len(l))); err != nil {
			t.Fatal(err)
		}
		o.Layers = append(o.Layers, index.OCILayer{Digest: sha(l), DiffID: sha(l), Size: int64(len(l))})
	}
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("example.com/" + name)
	im, err := s.ImportOCI(ctx, OCIImport{Manifest: []byte(`{"schemaVersion":2,"n":"` + name + `"}`), App: m, OCI: o, Source: o.Reference})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestOCIImagesShareLayers(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base, a, b := layerTar(t, "base", "0"), layerTar(t, "a", "1"), layerTar(t, "b", "2")
	imA := importOCI(t, s, "a", base, a)
	imB := importOCI(t, s, "b", base, b)
	if got, _ := s.OCIBlobs.Digests(ctx); len(got) != 5 { // 3 layers, 2 configs
		t.Fatalf("%d blobs stored, want 5: %v", len(got), got)
	}
	tr, err := s.Trees.Render(ctx, imA.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"base", "a"} {
		if _, err := os.Stat(tr.Rootfs + "/" + f); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			t.Fatalf("verify %s: %v", r.Key, r.Err)
		}
	}

	// A pod holds a: image rm refuses it and removes nothing.
	var refs References
	refs.HoldImage("pod-1", imA.ID)
	if _, err := s.Remove(ctx, imA.Key, refs); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove of a held image: %v", err)
	}
	if !s.OCIBlobs.Exists(sha(a)) {
		t.Fatal("a refused Remove removed a layer")
	}
	// b goes: its own layer and config go, the shared base stays.
	if _, err := s.Remove(ctx, imB.Key, References{}); err != nil {
		t.Fatal(err)
	}
	if s.OCIBlobs.Exists(sha(b)) || !s.OCIBlobs.Exists(sha(base)) || !s.OCIBlobs.Exists(sha(a)) {
		t.Fatalf("after removing b: b %v base %v a %v", s.OCIBlobs.Exists(sha(b)), s.OCIBlobs.Exists(sha(base)), s.OCIBlobs.Exists(sha(a)))
	}

	// An orphan (a fetch that failed after storing a layer) goes at gc;
	// a's layers, held by a pod, stay.
	orphan := layerTar(t, "orphan", "x")
	if err := s.OCIBlobs.Ingest(ctx, bytes.NewReader(orphan), sha(orphan), -1); err != nil {
		t.Fatal(err)
	}
	rep, err := s.GC(ctx, GCOptions{Refs: refs})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.OrphanBlobs, sha(orphan)) || s.OCIBlobs.Exists(sha(orphan)) {
		t.Errorf("gc did not remove the orphan blob: %v", rep.OrphanBlobs)
	}
	if !s.OCIBlobs.Exists(sha(a)) || !s.OCIBlobs.Exists(sha(base)) {
		t.Error("gc removed a held image's layer")
	}
}

func TestImportOCIRefusesMissingBlobs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := schema.BlankImageManifest()
	m.Name = "example.com/x"
	_, err = s.ImportOCI(ctx, OCIImport{Manifest: []byte("{}"), App: m, OCI: &index.OCIImage{Config: sha([]byte("nope"))}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("got %v", err)
	}
	if ims, _ := s.Images(ctx); len(ims) != 0 {
		t.Fatal("an image was recorded")
	}
	if keys, _ := s.Blobs.Keys(ctx); len(keys) != 0 {
		t.Fatal("a blob was stored")
	}
}
