package entrypoint

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestBindHostIPC: the bind run makes for --ipc=parent is this
// process's IPC namespace, at sdpod.HostIPCNS in the pod's root; it is
// never made over a file that was there, and undo takes it away.
func TestBindHostIPC(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	podDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(podDir, stage1abi.Stage1RootfsRel), 0o755); err != nil {
		t.Fatal(err)
	}
	undo, err := bindHostIPC(ctx, log, podDir)
	if err != nil {
		t.Fatal(err)
	}
	target := inStage1(podDir, sdpod.HostIPCNS)
	var got, want unix.Stat_t
	if err := unix.Stat(target, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/ipc", &want); err != nil {
		t.Fatal(err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		t.Errorf("%s is %d:%d, want the IPC namespace %d:%d", target, got.Dev, got.Ino, want.Dev, want.Ino)
	}
	// A second bind finds the file there and refuses.
	if _, err := bindHostIPC(ctx, log, podDir); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second bind over the first: %v, want it refused", err)
	}
	undo()
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after undo, %s: %v, want it gone", target, err)
	}
	// A symlink planted where the file goes is not followed.
	if err := os.Symlink("/etc/hostname", target); err != nil {
		t.Fatal(err)
	}
	if _, err := bindHostIPC(ctx, log, podDir); err == nil {
		t.Error("bind over a symlink succeeded")
	}
}
