package entrypoint

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/pkg/stage1abi"
)

// TestJournalLink: run links the host's journal directory entry to the
// pod's journal, and gc removes it only when it is the pod's, from
// wherever gc moved the pod directory.
func TestJournalLink(t *testing.T) {
	const uuid = "6c5ad1b1-3f0e-4b6a-9d58-0d2d0c1d9a01"
	id := stage1abi.MachineID(uuid)
	host := t.TempDir()
	old := hostJournalDir
	hostJournalDir = host
	t.Cleanup(func() { hostJournalDir = old })
	log := slog.New(slog.DiscardHandler)
	link := filepath.Join(host, id)

	target := filepath.Join("/var/lib/nscn/pods/run", uuid, stage1abi.JournalDir, id)
	linkJournal(t.Context(), log, target, id)
	if got, err := os.Readlink(link); err != nil || got != target {
		t.Fatalf("link = %q, %v; want %s", got, err, target)
	}
	// Again (run of a prepared pod that was linked): the same link is fine.
	linkJournal(t.Context(), log, target, id)

	// Another pod's link under the same name is not removed.
	other := filepath.Join("/var/lib/nscn/pods/run", "00000000-0000-4000-8000-000000000000", stage1abi.JournalDir, id)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	if err := unlinkJournal(uuid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("another pod's link was removed: %v", err)
	}
	// The pod's own, after gc moved its directory.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := unlinkJournal(uuid); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the pod's link is still there: %v", err)
	}
	// Nothing to remove, a directory under the name: no error, untouched.
	if err := unlinkJournal(uuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(link, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := unlinkJournal(uuid); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || !st.IsDir() {
		t.Fatalf("a directory under the pod's machine ID was touched: %v", err)
	}
}

// TestJournalNoHostDir: without the host's /var/log/journal nothing is
// linked, and gc has nothing to do.
func TestJournalNoHostDir(t *testing.T) {
	old := hostJournalDir
	hostJournalDir = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { hostJournalDir = old })
	linkJournal(t.Context(), slog.New(slog.DiscardHandler), "/x", "0123456789abcdef0123456789abcdef")
	if _, err := os.Lstat(hostJournalDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the host's journal directory was created: %v", err)
	}
	if err := unlinkJournal("01234567-89ab-cdef-0123-456789abcdef"); err != nil {
		t.Fatal(err)
	}
}
