// Package mountertest is the conformance suite of mountplan.Mounter: every
// implementation runs Run from its tests, so that Apply can rely on the
// same behavior from all of them. It is only imported by tests; running it
// against a Mounter that really mounts (mountplan.Kernel) needs root.
package mountertest

import (
	"context"
	"errors"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
)

// Harness adapts one implementation to the suite.
type Harness struct {
	// New returns a fresh Mounter to test.
	New func(t *testing.T) mountplan.Mounter
	// Mounted reports whether m has mounted something on target that is
	// still mounted.
	Mounted func(t *testing.T, m mountplan.Mounter, target string) bool
}

// tmpfs is a valid mount every implementation accepts.
func tmpfs(target string) mountplan.Mount {
	return mountplan.Mount{Source: "tmpfs", Target: target, FSType: "tmpfs", Data: "size=1m,mode=0755"}
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("valid mount", func(t *testing.T) {
		m := h.New(t)
		target := t.TempDir()
		t.Cleanup(func() { _ = mountplan.UnmountAll(context.Background(), target) })
		if err := m.Mount(context.Background(), tmpfs(target)); err != nil {
			t.Fatalf("Mount: %v", err)
		}
		if !h.Mounted(t, m, target) {
			t.Fatal("Mount returned nil but nothing is mounted")
		}
		u, ok := m.(mountplan.Unmounter)
		if !ok {
			return
		}
		if err := u.Unmount(context.Background(), target); err != nil {
			t.Fatalf("Unmount: %v", err)
		}
		if h.Mounted(t, m, target) {
			t.Fatal("still mounted after Unmount")
		}
	})

	t.Run("unmount of nothing", func(t *testing.T) {
		m := h.New(t)
		u, ok := m.(mountplan.Unmounter)
		if !ok {
			t.Skip("not an Unmounter")
		}
		if err := u.Unmount(context.Background(), t.TempDir()); err != nil {
			t.Fatalf("Unmount of a directory nothing is mounted on: %v", err)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		m := h.New(t)
		target := t.TempDir()
		t.Cleanup(func() { _ = mountplan.UnmountAll(context.Background(), target) })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := m.Mount(ctx, tmpfs(target)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Mount with a canceled context: %v, want context.Canceled", err)
		}
		if h.Mounted(t, m, target) {
			t.Fatal("mounted despite the canceled context")
		}
	})

	invalid := []struct {
		name   string
		mutate func(m *mountplan.Mount)
	}{
		{name: "relative target", mutate: func(m *mountplan.Mount) { m.Target = "rel/dir" }},
		{name: "unclean target", mutate: func(m *mountplan.Mount) { m.Target += "/../x/.." }},
		{name: "empty target", mutate: func(m *mountplan.Mount) { m.Target = "" }},
		{name: "empty fstype", mutate: func(m *mountplan.Mount) { m.FSType = "" }},
		{name: "empty source", mutate: func(m *mountplan.Mount) { m.Source = "" }},
		{name: "NUL in data", mutate: func(m *mountplan.Mount) { m.Data += "\x00,size=2m" }},
	}
	for _, tt := range invalid {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			m := h.New(t)
			target := t.TempDir()
			t.Cleanup(func() { _ = mountplan.UnmountAll(context.Background(), target) })
			mnt := tmpfs(target)
			tt.mutate(&mnt)
			if err := m.Mount(context.Background(), mnt); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Mount(%+v): %v, want InvalidArgument", mnt, err)
			}
			if h.Mounted(t, m, target) {
				t.Fatal("mounted an invalid mount")
			}
		})
	}
}
