package netns

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/testutil"
)

func TestNewDoRemove(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "ns", "nscn-test")
	if err := New(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(p) })

	if err := New(ctx, p); err == nil {
		t.Fatal("New on an existing pin succeeded")
	}
	if ok, err := IsNetNS(p); err != nil || !ok {
		t.Fatalf("IsNetNS = %v, %v; want true", ok, err)
	}
	var ifaces []net.Interface
	if err := Do(ctx, p, func() (err error) {
		ifaces, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces in the new namespace = %+v, want lo, up", ifaces)
	}
	// A socket made inside stays there: lo is the namespace's own.
	var l net.Listener
	if err := Do(ctx, p, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
		_ = c.Close()
		t.Fatal("the host reached a listener on the namespace's loopback")
	}

	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if ok, err := IsNetNS(p); err != nil || ok {
		t.Fatalf("IsNetNS after Remove = %v, %v; want false", ok, err)
	}
	if err := Remove(p); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestIsNetNSOnPlainFile(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{name: "directory", path: t.TempDir()},
		{name: "missing", path: filepath.Join(t.TempDir(), "nope")},
		{name: "other namespace type", path: "/proc/self/ns/uts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := IsNetNS(tt.path); ok {
				t.Fatalf("IsNetNS(%s) = true, %v", tt.path, err)
			}
		})
	}
}
