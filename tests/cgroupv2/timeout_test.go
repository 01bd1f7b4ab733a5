//go:build vm

package cgroupv2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil/vm"
)

// markerWriter closes found the first time marker is written.
type markerWriter struct {
	marker string
	found  chan struct{}
	mu     sync.Mutex
	seen   bytes.Buffer
	once   sync.Once
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen.Write(p)
	if bytes.Contains(w.seen.Bytes(), []byte(w.marker)) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

// qemuChildren returns the pids of this process's children whose command
// line names qemu.
func qemuChildren() []int {
	// The pattern is valid: Glob cannot fail.
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, p := range stats {
		b, err := os.ReadFile(p) //nolint:gosec // G304: a /proc file
		if err != nil {
			continue // gone since the glob
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(cmd, []byte("qemu")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestStoppedBootLeavesNoQemu boots a VM whose script never ends and
// stops the boot once the script runs, as a timeout would: Boot must
// return promptly, with the context's error, after qemu is dead and
// reaped. Before, a timed-out qemu went on running, orphaned to PID 1.
func TestStoppedBootLeavesNoQemu(t *testing.T) {
	m := newMachine(t)
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	w := &markerWriter{marker: "@@nscn-vm begin", found: make(chan struct{})}
	type stop struct {
		pids []int
		at   time.Time
	}
	stopped := make(chan stop, 1)
	go func() {
		select {
		case <-w.found:
		case <-ctx.Done():
			stopped <- stop{}
			return
		}
		pids := qemuChildren()
		at := time.Now()
		cancel()
		stopped <- stop{pids: pids, at: at}
	}()
	_, err := m.Boot(ctx, t.TempDir(), w, []vm.Script{{Name: "hang", Body: "echo hanging\nsleep 100000\n"}})
	returned := time.Now()
	s := <-stopped
	if s.at.IsZero() {
		t.Fatalf("the hanging script never started: %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Boot: %v, want the boot stopped (context canceled)", err)
	}
	if len(s.pids) != 1 {
		t.Fatalf("qemu children while the guest ran: %v, want one", s.pids)
	}
	var be *vm.BootError
	if errors.As(err, &be) {
		err = be.Err // without the console tail
	}
	t.Logf("qemu %d stopped; Boot returned %s later: %v", s.pids[0], returned.Sub(s.at).Round(time.Millisecond), err)
	if d := returned.Sub(s.at); d > 3*time.Second {
		t.Errorf("Boot returned %s after the stop, want at once (qemu killed, not waited out)", d)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.pids[0])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("qemu %d still there after Boot returned (%v)", s.pids[0], err)
	}
	if left := qemuChildren(); len(left) != 0 {
		t.Errorf("qemu children left: %v", left)
	}
}
