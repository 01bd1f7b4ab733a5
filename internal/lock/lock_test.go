package lock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

// Environment of the helper process (TestHelperProcess): what it does and
// on what.
const (
	envHelper     = "NSCN_LOCK_TEST_HELPER"
	envHelperPath = "NSCN_LOCK_TEST_PATH"
)

// take locks path with mode m ("ex" or "sh") without waiting.
func take(path string, kind Kind, m string) (*File, error) {
	if m == "sh" {
		return TrySharedLock(path, kind)
	}
	return TryExclusiveLock(path, kind)
}

func paths(t *testing.T) map[Kind]string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "lockfile")
	return map[Kind]string{Dir: dir, RegularFile: file}
}

// TestConflicts takes two locks through two independent opens in one
// process: flock locks belong to open file descriptions, so they conflict
// as if taken by two processes.
func TestConflicts(t *testing.T) {
	tests := []struct {
		name          string
		first, second string
		conflict      bool
	}{
		{name: "exclusive then exclusive", first: "ex", second: "ex", conflict: true},
		{name: "exclusive then shared", first: "ex", second: "sh", conflict: true},
		{name: "shared then exclusive", first: "sh", second: "ex", conflict: true},
		{name: "shared then shared", first: "sh", second: "sh", conflict: false},
	}
	for _, kind := range []Kind{Dir, RegularFile} {
		for _, tt := range tests {
			t.Run(kind.String()+"/"+tt.name, func(t *testing.T) {
				path := paths(t)[kind]
				a, err := take(path, kind, tt.first)
				if err != nil {
					t.Fatalf("first lock: %v", err)
				}
				defer func() { _ = a.Close() }()
				b, err := take(path, kind, tt.second)
				if tt.conflict {
					if !errors.Is(err, ErrLocked) || !errors.Is(err, errdefs.ErrUnavailable) {
						t.Fatalf("second lock: got %v, want ErrLocked of class Unavailable", err)
					}
				} else {
					if err != nil {
						t.Fatalf("second lock: %v", err)
					}
					_ = b.Close()
				}
				// Released by Unlock: the second lock now succeeds.
				if err := a.Unlock(); err != nil {
					t.Fatal(err)
				}
				b, err = take(path, kind, tt.second)
				if err != nil {
					t.Fatalf("second lock after unlock: %v", err)
				}
				_ = b.Close()
			})
		}
	}
}

func TestCloseReleases(t *testing.T) {
	path := t.TempDir()
	a, err := TryExclusiveLock(path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if a.Fd() != -1 {
		t.Errorf("Fd after Close = %d, want -1", a.Fd())
	}
	if err := a.Unlock(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Unlock after Close = %v, want FailedPrecondition", err)
	}
	b, err := TryExclusiveLock(path, Dir)
	if err != nil {
		t.Fatalf("lock after Close: %v", err)
	}
	_ = b.Close()
}

func TestConversion(t *testing.T) {
	path := t.TempDir()
	a, err := TrySharedLock(path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	if err := a.TryExclusiveLock(); err != nil {
		t.Fatalf("upgrade own shared lock: %v", err)
	}
	if _, err := TrySharedLock(path, Dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock next to an exclusive one: %v, want ErrLocked", err)
	}
	if err := a.TrySharedLock(); err != nil {
		t.Fatalf("downgrade: %v", err)
	}
	b, err := TrySharedLock(path, Dir)
	if err != nil {
		t.Fatalf("shared lock next to a downgraded one: %v", err)
	}
	defer func() { _ = b.Close() }()
	if err := a.TryExclusiveLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("upgrade with another shared holder: %v, want ErrLocked", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		kind  Kind
		class error
	}{
		{name: "missing directory", path: filepath.Join(dir, "nope"), kind: Dir, class: errdefs.ErrNotFound},
		{name: "file as directory", path: file, kind: Dir, class: errdefs.ErrInvalidArgument},
		{name: "directory as file", path: dir, kind: RegularFile, class: errdefs.ErrInvalidArgument},
		{name: "symlink to directory", path: link, kind: Dir, class: errdefs.ErrInvalidArgument},
		{name: "fifo as file", path: fifo, kind: RegularFile, class: errdefs.ErrInvalidArgument},
		{name: "missing parent of file", path: filepath.Join(dir, "nope", "f"), kind: RegularFile, class: errdefs.ErrNotFound},
		{name: "unknown kind", path: dir, kind: Kind(42), class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := TryExclusiveLock(tt.path, tt.kind)
			if err == nil {
				_ = l.Close()
				t.Fatal("lock succeeded")
			}
			if !errors.Is(err, tt.class) {
				t.Fatalf("got %v, want class %v", err, tt.class)
			}
		})
	}
}

func TestRegularFileIsCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.lock")
	l, err := TryExclusiveLock(path, RegularFile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("created lock file mode %v, want regular 0600", fi.Mode())
	}
	if l.Path() != path {
		t.Errorf("Path = %q", l.Path())
	}
}

func TestWait(t *testing.T) {
	tests := []struct {
		name    string
		release time.Duration // when the holder releases; 0: never
		timeout time.Duration
		wantErr error
	}{
		{name: "acquired once released", release: 30 * time.Millisecond, timeout: 10 * time.Second},
		{name: "context deadline", timeout: 30 * time.Millisecond, wantErr: context.DeadlineExceeded},
	}
	for _, shared := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/shared=%v", tt.name, shared), func(t *testing.T) {
				path := t.TempDir()
				holder, err := TryExclusiveLock(path, Dir)
				if err != nil {
					t.Fatal(err)
				}
				released := make(chan struct{})
				if tt.release > 0 {
					time.AfterFunc(tt.release, func() {
						_ = holder.Unlock()
						close(released)
					})
				} else {
					close(released)
				}
				defer func() {
					<-released // a File is not for concurrent use
					_ = holder.Close()
				}()
				ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
				defer cancel()
				var l *File
				if shared {
					l, err = SharedLock(ctx, path, Dir)
				} else {
					l, err = ExclusiveLock(ctx, path, Dir)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if err == nil {
					_ = l.Close()
				}
			})
		}
	}
}

// TestWaitWithoutCancel uses the kernel's blocking wait.
func TestWaitWithoutCancel(t *testing.T) {
	path := t.TempDir()
	holder, err := TryExclusiveLock(path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, func() { _ = holder.Close() })
	l, err := ExclusiveLock(context.Background(), path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
}

func cloexec(t *testing.T, fd int) bool {
	t.Helper()
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatalf("fcntl %d: %v", fd, err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

func TestKeepOnExecAndDup(t *testing.T) {
	path := t.TempDir()
	l, err := TryExclusiveLock(path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	if !cloexec(t, l.Fd()) {
		t.Fatal("a fresh lock descriptor must be close-on-exec")
	}
	if err := l.KeepOnExec(); err != nil {
		t.Fatal(err)
	}
	if cloexec(t, l.Fd()) {
		t.Fatal("KeepOnExec left close-on-exec set")
	}

	// A duplicate at a fixed number shares the lock and outlives l.
	spare, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	target := int(spare.Fd())
	if err := l.DupTo(target); err != nil {
		t.Fatal(err)
	}
	if cloexec(t, target) {
		t.Error("DupTo left close-on-exec set")
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(target, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &want); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || got.Dev != want.Dev {
		t.Fatal("DupTo target does not name the locked directory")
	}
	d, err := l.Dup()
	if err != nil {
		t.Fatal(err)
	}
	if !cloexec(t, int(d.Fd())) {
		t.Error("Dup must be close-on-exec")
	}
	_ = l.Close()
	_ = d.Close()
	if _, err := TryExclusiveLock(path, Dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock released while the DupTo copy is open: %v", err)
	}
	_ = spare.Close() // closes target
	if b, err := TryExclusiveLock(path, Dir); err != nil {
		t.Fatalf("lock still held after every descriptor closed: %v", err)
	} else {
		_ = b.Close()
	}
	if err := l.DupTo(target); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("DupTo on a closed File: %v", err)
	}
}

func TestFromFd(t *testing.T) {
	path := t.TempDir()
	l, err := TryExclusiveLock(path, Dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Dup()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(d.Fd()))
	_ = d.Close()
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	adopted, err := FromFd(fd, path)
	if err != nil {
		t.Fatal(err)
	}
	// Converting one's own lock never conflicts.
	if err := adopted.TryExclusiveLock(); err != nil {
		t.Fatalf("lock through the adopted descriptor: %v", err)
	}
	if _, err := TryExclusiveLock(path, Dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("adopted descriptor does not hold the lock: %v", err)
	}
	_ = adopted.Close()

	if _, err := FromFd(fd, path); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("FromFd on a closed descriptor: %v", err)
	}
	if _, err := FromFd(-1, path); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("FromFd(-1): %v", err)
	}
}

// helper starts this test binary as TestHelperProcess in the given mode.
func helper(t *testing.T, mode, path string, extra ...*os.File) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false") //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envHelperPath+"="+path)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, in, bufio.NewReader(out)
}

// expectLine reads lines until one equals want.
func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("helper output ended before %q: %v", want, err)
		}
		if line == want+"\n" {
			return
		}
		if len(line) > 6 && line[:6] == "error:" {
			t.Fatalf("helper: %s", line)
		}
	}
}

// TestCrossProcess covers the stage0 → stage1 handoff shapes: a lock
// taken by another process, one passed to a child through ExtraFiles, and
// one kept across an execve with its number in the environment.
func TestCrossProcess(t *testing.T) {
	tests := []struct {
		name string
		// start returns the running helper; the parent holds nothing when
		// it returns.
		start func(t *testing.T, path string) (*exec.Cmd, io.WriteCloser, *bufio.Reader)
	}{
		{
			name: "locked by another process",
			start: func(t *testing.T, path string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
				return helper(t, "lock", path)
			},
		},
		{
			name: "handed to a child through ExtraFiles",
			start: func(t *testing.T, path string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
				l, err := TryExclusiveLock(path, Dir)
				if err != nil {
					t.Fatal(err)
				}
				d, err := l.Dup()
				if err != nil {
					t.Fatal(err)
				}
				cmd, in, out := helper(t, "inherit", path, d)
				_ = d.Close()
				_ = l.Close()
				return cmd, in, out
			},
		},
		{
			name: "kept across execve",
			start: func(t *testing.T, path string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
				return helper(t, "exec", path)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir()
			cmd, in, out := tt.start(t, path)
			expectLine(t, out, "held")
			if _, err := TryExclusiveLock(path, Dir); !errors.Is(err, ErrLocked) {
				t.Fatalf("lock while the helper holds it: %v, want ErrLocked", err)
			}
			if _, err := TrySharedLock(path, Dir); !errors.Is(err, ErrLocked) {
				t.Fatalf("shared lock while the helper holds it: %v, want ErrLocked", err)
			}
			_ = in.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			l, err := TryExclusiveLock(path, Dir)
			if err != nil {
				t.Fatalf("lock after the helper exited: %v", err)
			}
			_ = l.Close()
		})
	}
}

// TestHelperProcess is not a test: TestCrossProcess runs it in a child.
// It reports "held" once it holds the lock on $NSCN_LOCK_TEST_PATH, then
// waits for its stdin to close.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process only")
	}
	path := os.Getenv(envHelperPath)
	fail := func(err error) {
		fmt.Printf("error: %v\n", err)
		t.Fatal(err)
	}
	var l *File
	var err error
	switch mode {
	case "lock":
		l, err = TryExclusiveLock(path, Dir)
	case "inherit":
		l, err = FromFd(3, path)
	case "exec":
		// Lock, keep the descriptor across execve, and exec this binary
		// again in "execed" mode: the shape of stage0 execing stage1.
		l, err = TryExclusiveLock(path, Dir)
		if err == nil {
			err = l.KeepOnExec()
		}
		if err == nil {
			// The first of two equal names wins in getenv: override, do
			// not append.
			t.Setenv(envHelper, "execed")
			t.Setenv("RKT_LOCK_FD", strconv.Itoa(l.Fd()))
			env := os.Environ()
			err = syscall.Exec(os.Args[0], os.Args, env) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		}
	case "execed":
		var fd int
		fd, err = strconv.Atoi(os.Getenv("RKT_LOCK_FD"))
		if err == nil {
			l, err = FromFd(fd, path)
		}
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fail(err)
	}
	defer func() { _ = l.Close() }()
	// The handed-over descriptor holds the lock: converting it succeeds,
	// while a fresh open conflicts.
	if err := l.TryExclusiveLock(); err != nil {
		fail(err)
	}
	if other, err := TryExclusiveLock(path, Dir); !errors.Is(err, ErrLocked) {
		_ = other.Close()
		fail(fmt.Errorf("fresh open got the lock: %w", err))
	}
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestHeldExclusively(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		hold string // "", "ex" or "sh"
		want bool
	}{
		{name: "free directory", kind: Dir, want: false},
		{name: "exclusively locked directory", kind: Dir, hold: "ex", want: true},
		{name: "shared locked directory", kind: Dir, hold: "sh", want: false},
		{name: "exclusively locked file", kind: RegularFile, hold: "ex", want: true},
		{name: "free file", kind: RegularFile, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := paths(t)[tt.kind]
			if tt.kind == RegularFile {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.hold != "" {
				l, err := take(path, tt.kind, tt.hold)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = l.Close() }()
			}
			got, err := HeldExclusively(path, tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("HeldExclusively = %v, want %v", got, tt.want)
			}
			// The probe left no lock behind.
			l, err := TryExclusiveLock(path, tt.kind)
			if tt.hold == "" {
				if err != nil {
					t.Fatalf("lock after probe: %v", err)
				}
				_ = l.Close()
			}
		})
	}
	if _, err := HeldExclusively(filepath.Join(t.TempDir(), "missing"), Dir); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("probe of a missing directory: %v, want NotFound", err)
	}
}
