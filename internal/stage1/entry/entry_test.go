package entry

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

func TestErrorLine(t *testing.T) {
	tests := []struct {
		flavor Flavor
		err    error
		want   string
	}{
		{flavor: "nspawn", err: errors.New("run: no pod"), want: "stage1-nspawn: run: no pod"},
		{flavor: "fly", err: errors.New("a\nmulti-line\t error "), want: "stage1-fly: a multi-line error"},
		{flavor: "kvm", err: errors.New(""), want: "stage1-kvm: "},
	}
	for _, tt := range tests {
		if got := tt.flavor.ErrorLine(tt.err); got != tt.want {
			t.Errorf("%s.ErrorLine(%q) = %q, want %q", tt.flavor, tt.err, got, tt.want)
		}
	}
}

func TestLogger(t *testing.T) {
	tests := []struct {
		debug     bool
		wantDebug bool
	}{{debug: false}, {debug: true, wantDebug: true}}
	for _, tt := range tests {
		var buf bytes.Buffer
		log := Flavor("fly").Logger(&buf, tt.debug)
		log.Debug("detail")
		log.Warn("careful")
		out := buf.String()
		if strings.Contains(out, "detail") != tt.wantDebug {
			t.Errorf("debug=%v: debug line shown = %v:\n%s", tt.debug, !tt.wantDebug, out)
		}
		if !strings.Contains(out, "careful") || !strings.Contains(out, "flavor=fly") {
			t.Errorf("debug=%v: want the warning tagged flavor=fly:\n%s", tt.debug, out)
		}
	}
}

func TestDebugFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "false": false, "yes": false} {
		t.Setenv(stage1abi.EnvStage1Debug, v)
		if got := DebugFromEnv(); got != want {
			t.Errorf("%s=%q: DebugFromEnv = %v, want %v", stage1abi.EnvStage1Debug, v, got, want)
		}
	}
}

func TestCheckLockFD(t *testing.T) {
	podDir := t.TempDir()
	pod, err := os.Open(podDir) //nolint:gosec // G304: the test's own directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pod.Close() }()
	other, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	// An fd number surely not open: above every one this process has.
	closed := strconv.Itoa(int(other.Fd()) + 100)
	tests := []struct {
		name      string
		v         string
		wantClass error
	}{
		{name: "the pod directory", v: strconv.Itoa(int(pod.Fd()))},
		{name: "unset", v: "", wantClass: errdefs.ErrFailedPrecondition},
		{name: "not a number", v: "three", wantClass: errdefs.ErrInvalidArgument},
		{name: "stdio", v: "2", wantClass: errdefs.ErrInvalidArgument},
		{name: "not open", v: closed, wantClass: errdefs.ErrInvalidArgument},
		{name: "another directory", v: strconv.Itoa(int(other.Fd())), wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As stage0 passes it: inheritable.
			if _, err := unix.FcntlInt(pod.Fd(), unix.F_SETFD, 0); err != nil {
				t.Fatal(err)
			}
			err := CheckLockFD(tt.v, podDir)
			if tt.wantClass == nil {
				if err != nil {
					t.Fatalf("CheckLockFD: %v", err)
				}
				flags, err := unix.FcntlInt(pod.Fd(), unix.F_GETFD, 0)
				if err != nil || flags&unix.FD_CLOEXEC == 0 {
					t.Errorf("the lock fd is not close-on-exec (flags %#x, %v)", flags, err)
				}
				return
			}
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("CheckLockFD(%q) = %v, want class %v", tt.v, err, tt.wantClass)
			}
		})
	}
}
