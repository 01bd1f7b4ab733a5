package mountplan

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Mount is one mount(2) call.
type Mount struct {
	Source string
	Target string // absolute, clean
	FSType string
	Flags  uintptr // MS_* flags of mount(2)
	Data   string  // filesystem options
}

// String formats m as "SOURCE TARGET FSTYPE flags=0xN DATA".
func (m Mount) String() string {
	return fmt.Sprintf("%s %s %s flags=%#x %s", m.Source, m.Target, m.FSType, m.Flags, m.Data)
}

// Validate checks what every Mounter checks before acting. Its errors are
// of class errdefs.ErrInvalidArgument.
func (m Mount) Validate() error {
	err := func() error {
		if m.Source == "" {
			return fmt.Errorf("empty source")
		}
		if m.FSType == "" {
			return fmt.Errorf("empty filesystem type")
		}
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target {
			return fmt.Errorf("target %q is not a clean absolute path", m.Target)
		}
		if strings.ContainsRune(m.Source+m.Target+m.FSType+m.Data, 0) {
			return fmt.Errorf("NUL byte in mount")
		}
		return nil
	}()
	if err != nil {
		return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("mount %s on %q: %w", m.FSType, m.Target, err))
	}
	return nil
}

// Mounter performs mounts. Implementations check the mount (Validate) and
// the context before acting, and do nothing when either fails.
type Mounter interface {
	Mount(ctx context.Context, m Mount) error
}

// Compile-time checks of the implementations.
var (
	_ Mounter   = Kernel{}
	_ Mounter   = (*Recorder)(nil)
	_ Mounter   = (*Logging)(nil)
	_ Unmounter = (*Recorder)(nil)
	_ Unmounter = (*Logging)(nil)
)

// Recorder is a Mounter that records mounts instead of performing them. It
// is safe for concurrent use.
type Recorder struct {
	// Fail, when set, is asked about each valid mount; an error it returns
	// is returned by Mount and the mount is not recorded.
	Fail func(m Mount) error

	mu       sync.Mutex
	mounts   []Mount
	unmounts []string
}

// Mount records m.
func (r *Recorder) Mount(ctx context.Context, m Mount) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if r.Fail != nil {
		if err := r.Fail(m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mounts = append(r.mounts, m)
	return nil
}

// Unmount records an unmount of target, as Apply does to undo a plan.
func (r *Recorder) Unmount(ctx context.Context, target string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unmounts = append(r.unmounts, target)
	return nil
}

// Unmounts returns the targets unmounted so far, in order.
func (r *Recorder) Unmounts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.unmounts)
}

// Mounts returns the mounts recorded so far, in order.
func (r *Recorder) Mounts() []Mount {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.mounts)
}

// Logging is a Mounter that logs every mount at debug level, and its
// failure, before and after passing it to Next.
type Logging struct {
	Next Mounter
	Log  *slog.Logger
}

// NewLogging wraps next so that its mounts are logged to log.
func NewLogging(next Mounter, log *slog.Logger) *Logging {
	return &Logging{Next: next, Log: log}
}

// Mount logs m and passes it on.
func (l *Logging) Mount(ctx context.Context, m Mount) error {
	attrs := []any{"source", m.Source, "target", m.Target, "fstype", m.FSType, "flags", fmt.Sprintf("%#x", m.Flags), "data", m.Data}
	l.Log.DebugContext(ctx, "mount", attrs...)
	err := l.Next.Mount(ctx, m)
	if err != nil {
		l.Log.DebugContext(ctx, "mount failed", append(attrs, "err", err)...)
	}
	return err
}

// Unmount logs the unmount of target and passes it on, if Next can
// unmount; otherwise it fails with errdefs.ErrNotImplemented.
func (l *Logging) Unmount(ctx context.Context, target string) error {
	u, ok := l.Next.(Unmounter)
	if !ok {
		return errdefs.Newf(errdefs.ErrNotImplemented, "unmount %s: %T cannot unmount", target, l.Next)
	}
	l.Log.DebugContext(ctx, "unmount", "target", target)
	err := u.Unmount(ctx, target)
	if err != nil {
		l.Log.DebugContext(ctx, "unmount failed", "target", target, "err", err)
	}
	return err
}
