package mountplan_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/mountplan/mountertest"
	"github.com/nosecone/nscn/internal/testutil"
)

// recorded reports whether r holds more mounts than unmounts of target.
func recorded(r *mountplan.Recorder, target string) bool {
	n := 0
	for _, m := range r.Mounts() {
		if m.Target == target {
			n++
		}
	}
	for _, u := range r.Unmounts() {
		if u == target {
			n--
		}
	}
	return n > 0
}

func TestRecorderConformance(t *testing.T) {
	mountertest.Run(t, mountertest.Harness{
		New: func(*testing.T) mountplan.Mounter { return &mountplan.Recorder{} },
		Mounted: func(_ *testing.T, m mountplan.Mounter, target string) bool {
			return recorded(m.(*mountplan.Recorder), target)
		},
	})
}

func TestLoggingConformance(t *testing.T) {
	mountertest.Run(t, mountertest.Harness{
		New: func(*testing.T) mountplan.Mounter {
			return mountplan.NewLogging(&mountplan.Recorder{}, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
		},
		Mounted: func(_ *testing.T, m mountplan.Mounter, target string) bool {
			return recorded(m.(*mountplan.Logging).Next.(*mountplan.Recorder), target)
		},
	})
}

func TestKernelConformance(t *testing.T) {
	testutil.RequiresRoot(t)
	mountertest.Run(t, mountertest.Harness{
		New: func(*testing.T) mountplan.Mounter { return mountplan.Kernel{} },
		Mounted: func(t *testing.T, _ mountplan.Mounter, target string) bool {
			mps, err := mountplan.MountPointsUnder(context.Background(), target)
			if err != nil {
				t.Fatal(err)
			}
			return slices.Contains(mps, target)
		},
	})
}

func TestLoggingLogsEveryMount(t *testing.T) {
	var buf bytes.Buffer
	rec := &mountplan.Recorder{Fail: func(m mountplan.Mount) error {
		if strings.HasSuffix(m.Target, "bad") {
			return errors.New("boom")
		}
		return nil
	}}
	l := mountplan.NewLogging(rec, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	if err := l.Mount(ctx, mountplan.Mount{Source: "overlay", Target: "/pod/ok", FSType: "overlay", Data: "lowerdir=/l"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Mount(ctx, mountplan.Mount{Source: "tmpfs", Target: "/pod/bad", FSType: "tmpfs"}); err == nil {
		t.Fatal("failing mount succeeded")
	}
	if err := l.Unmount(ctx, "/pod/ok"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg=mount source=overlay target=/pod/ok fstype=overlay flags=0x0 data="lowerdir=/l"`,
		`msg="mount failed" source=tmpfs target=/pod/bad`,
		`err=boom`,
		`msg=unmount target=/pod/ok`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// Debug only: nothing at the default level.
	buf.Reset()
	quiet := mountplan.NewLogging(rec, slog.New(slog.NewTextHandler(&buf, nil)))
	if err := quiet.Mount(ctx, mountplan.Mount{Source: "tmpfs", Target: "/pod/x", FSType: "tmpfs"}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("logged above debug level: %s", buf.String())
	}
	// A Logging over a Mounter that cannot unmount says so.
	if err := mountplan.NewLogging(onlyMounter{}, slog.Default()).Unmount(ctx, "/x"); err == nil {
		t.Error("Unmount through a plain Mounter succeeded")
	}
}

type onlyMounter struct{}

func (onlyMounter) Mount(context.Context, mountplan.Mount) error { return nil }
