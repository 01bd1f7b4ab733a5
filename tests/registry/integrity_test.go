//go:build functional

package registry

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestTamperedBlobRefused serves an image through a proxy that flips one
// byte of one blob: nscn must refuse it with an error naming the blob and
// leave the store as it was. The same fetch without the tampering then
// succeeds, so the refusal is the flipped byte's doing.
func TestTamperedBlobRefused(t *testing.T) {
	reg := startRegistry(t, registryOpts{})
	// One layer only, so that "nothing stored" has no good layer to
	// argue about.
	layer := layerOf(t, file("payload", string(randomBytes(t, 256<<10))))
	img := imageOf(t, v1.Config{Cmd: []string{"/payload"}}, layer)
	digest := reg.push("tampered:v1", img)
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		blob   string
		offset int64
		ref    string
	}{
		{name: "layer, by tag", blob: digestOf(t, layer), offset: sizeOf(t, layer) / 2, ref: "tampered:v1"},
		{name: "layer, by digest", blob: digestOf(t, layer), offset: sizeOf(t, layer) - 1, ref: "tampered@" + digest},
		{name: "config", blob: cfgName.String(), offset: 10, ref: "tampered:v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, reg)
			p.tamperBlob(tt.blob, tt.offset)
			e := newEnv(t)
			before := e.snapshot()
			hex := strings.TrimPrefix(tt.blob, "sha256:")
			e.refused(fetchArgs("http,image", p.ref(tt.ref)), hex[:12])
			if len(p.blobGets(tt.blob)) == 0 {
				t.Fatalf("the tampered blob was never downloaded:\n%s", p.dump())
			}
			e.assertNothingStored(before)

			clean := startProxy(t, reg)
			e.ok(fetchArgs("http,image", clean.ref(tt.ref))...)
		})
	}
}

// TestInterruptedPullResumes stalls the download of a 16 MiB layer half
// way, kills nscn with SIGKILL, and fetches again: the second download of
// the layer must be a Range request starting near where the first one
// stopped, and serve only the rest. The pulled image then runs and holds
// the layer's data intact.
func TestInterruptedPullResumes(t *testing.T) {
	const (
		size  = 16 << 20
		stall = 8 << 20
	)
	reg := startRegistry(t, registryOpts{})
	data := randomBytes(t, size)
	big := layerOf(t, file("big", string(data)))
	reg.push("big:v1", imageOf(t, v1.Config{}, busyboxLayer(t), big))
	bd, bsize := digestOf(t, big), sizeOf(t, big)

	p := startProxy(t, reg)
	p.stallBlob(bd, stall)
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.cmd(ctx, fetchArgs("http,image", p.ref("big:v1"))...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	select {
	case <-p.stalled:
	case err := <-exited:
		t.Fatalf("nscn fetch ended (%v) before the layer stalled:\n%s\n%s", err, out.String(), p.dump())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the layer never stalled:\n%s", p.dump())
	}
	// Give nscn time to write what it received; a file of at least half
	// of it in the data directory says it has.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && largestFile(e.dir) < stall/2 {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil {
		t.Fatal("nscn fetch exited 0 after SIGKILL")
	}
	first := p.blobGets(bd)
	waitFor(t, func() bool { first = p.blobGets(bd); return len(first) == 1 }, "the stalled GET in the proxy's log")
	if first[0].bytes != stall {
		t.Fatalf("first download served %d bytes, want %d", first[0].bytes, stall)
	}

	r := e.ok(fetchArgs("http,image", p.ref("big:v1"))...)
	gets := p.blobGets(bd)
	if len(gets) != 2 {
		t.Fatalf("want the stalled GET and one more of the layer, got %d:\n%s\n%s", len(gets), p.dump(), r)
	}
	var from int64
	if _, err := fmt.Sscanf(gets[1].rangeHdr, "bytes=%d-", &from); err != nil {
		t.Fatalf("the second GET of the layer has Range %q, want bytes=N-: it downloaded the finished part again\n%s", gets[1].rangeHdr, p.dump())
	}
	t.Logf("first GET stalled after %d bytes; the second asked for %q and got %d of %d bytes", first[0].bytes, gets[1].rangeHdr, gets[1].bytes, bsize)
	if from < stall/2 || from > stall {
		t.Errorf("resumed from byte %d; want between %d and %d (what the first GET delivered)", from, stall/2, stall)
	}
	if gets[1].bytes != bsize-from {
		t.Errorf("the resumed GET served %d bytes, want the rest, %d", gets[1].bytes, bsize-from)
	}

	run := e.ok(runArgs(t, "http,image", p.ref("big:v1"), "--exec=/bin/sha256sum", "--", "/big")...)
	if f := strings.Fields(run.stdout); len(f) == 0 || "sha256:"+f[0] != sha256Hex(data) {
		t.Fatalf("the resumed layer's /big has the wrong content (want %s):\n%s", sha256Hex(data), run)
	}
}

// largestFile is the size of the largest regular file under dir.
func largestFile(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > n {
			n = fi.Size()
		}
		return nil
	})
	return n
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
