// Command stub-stage1 is a stage1 that only does the handshake of the
// stage1 ABI (pkg/stage1abi, Documentation/stage1-abi.md), so that the
// end-to-end tests can check that stage0 keeps its side of it. One static
// binary serves every entrypoint, chosen by the basename of argv[0] (the
// image has one hard link per entrypoint) or else by argv[1].
//
//   - run checks, from its working directory (the pod directory), that
//     stage1abi.EnvLockFD names a descriptor on the pod directory that
//     holds its lock; writes the pid file; optionally holds the lock for a
//     while (stub.AnnotationSleep); writes each app's exit status
//     (stub.AppStatus); records what it saw; writes the exited marker; and
//     exits with the first non-zero status, or stage1abi.ExitRuntime when
//     the handshake is wrong.
//   - enter, gc, stop and the app entrypoints record their argv. stop
//     also signals the pod's pid (SIGTERM, or SIGKILL with --force).
//
// Records are JSON lines in the pod directory, read back with
// stub.ReadRecords. The program creates no namespace, mounts nothing and
// needs no privileges. Package stub builds its image.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/tests/stub-stage1/stub"
)

func main() {
	os.Exit(stubMain(os.Args)) //nolint:forbidigo // main: only main exits
}

// stubMain runs the entrypoint argv names and returns the exit status.
func stubMain(argv []string) int {
	ep, args, err := dispatch(argv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stub-stage1: %v\n", err)
		return stage1abi.ExitRuntime
	}
	rec := stub.Record{Entrypoint: ep, Argv0: argv[0], Args: args, PID: os.Getpid(), Env: abiEnv()}
	rec.Cwd, _ = os.Getwd()
	var podDir string
	if ep == stub.Run {
		podDir = rec.Cwd // the ABI: run starts in the pod directory
		rec.Exit, err = run(&rec, podDir)
	} else {
		podDir, err = findPodDir(rec.Cwd)
		if err == nil {
			rec.Exit, err = other(&rec, podDir)
		}
	}
	if err != nil {
		rec.Exit, rec.Error = stage1abi.ExitRuntime, err.Error()
		fmt.Fprintf(os.Stderr, "stub-stage1 %s: %v\n", ep, err)
	}
	if podDir != "" {
		if werr := appendRecord(podDir, rec); werr != nil {
			fmt.Fprintf(os.Stderr, "stub-stage1 %s: %v\n", ep, werr)
			return stage1abi.ExitRuntime
		}
	}
	if ep == stub.Run && rec.Error == "" {
		if err := writeFile(podDir, stage1abi.ExitedMarker, nil); err != nil {
			fmt.Fprintf(os.Stderr, "stub-stage1 run: %v\n", err)
			return stage1abi.ExitRuntime
		}
	}
	return rec.Exit
}

// dispatch names the entrypoint and its arguments.
func dispatch(argv []string) (string, []string, error) {
	if len(argv) == 0 {
		return "", nil, errors.New("empty argv")
	}
	if ep := filepath.Base(argv[0]); stub.Annotations[ep] != "" {
		return ep, argv[1:], nil
	}
	if len(argv) > 1 && stub.Annotations[argv[1]] != "" {
		return argv[1], argv[2:], nil
	}
	return "", nil, fmt.Errorf("no entrypoint named by argv %q", argv)
}

func abiEnv() map[string]string {
	env := make(map[string]string)
	for _, k := range []string{stage1abi.EnvLockFD, stage1abi.EnvStage1Debug} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	return env
}

// findPodDir is the working directory when it holds a pod manifest, or
// else the pod directory the binary was started from
// (<pod>/stage1/rootfs/stub-stage1/bin/<entrypoint>).
func findPodDir(cwd string) (string, error) {
	if _, err := os.Stat(filepath.Join(cwd, stage1abi.PodManifestFile)); err == nil {
		return cwd, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find pod directory: %w", err)
	}
	up := filepath.Join(filepath.Dir(exe), strings.Repeat("../", strings.Count(stub.BinDir, "/")), "../..")
	if _, err := os.Stat(filepath.Join(up, stage1abi.PodManifestFile)); err != nil {
		return "", fmt.Errorf("find pod directory: neither %s nor %s holds a pod manifest", cwd, up)
	}
	return up, nil
}

func readManifest(podDir string, rec *stub.Record) (*schema.PodManifest, error) {
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.PodManifestFile)) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return nil, fmt.Errorf("read pod manifest: %w", err)
	}
	if json.Valid(b) {
		rec.PodManifest = b
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(b, &pm); err != nil {
		return nil, fmt.Errorf("parse pod manifest: %w", err)
	}
	return &pm, nil
}

func run(rec *stub.Record, podDir string) (int, error) {
	pm, err := readManifest(podDir, rec)
	if err != nil {
		return 0, err
	}
	lc := checkLock(os.Getenv(stage1abi.EnvLockFD), podDir)
	rec.Lock = &lc
	if !lc.Held {
		return 0, fmt.Errorf("pod lock: %s", lc.Err)
	}
	if err := writeFile(podDir, stage1abi.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return 0, err
	}
	var sig os.Signal
	if v, ok := pm.Annotations.Get(stub.AnnotationSleep); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("annotation %s: %w", stub.AnnotationSleep, err)
		}
		sig = sleep(d)
	}
	rec.Statuses = make(map[string]int, len(pm.Apps))
	exit := 0
	for _, ra := range pm.Apps {
		st, err := stub.AppStatus(ra)
		if err != nil {
			return 0, fmt.Errorf("app %s: %w", ra.Name, err)
		}
		if _, explicit := ra.Annotations.Get(stub.AnnotationExitStatus); sig != nil && !explicit && st == 0 {
			st = stage1abi.SignalStatusBase + int(sig.(syscall.Signal))
		}
		rec.Statuses[ra.Name.String()] = st
		if err := writeFile(podDir, stage1abi.AppStatusFile(ra.Name.String()), []byte(strconv.Itoa(st)+"\n")); err != nil {
			return 0, err
		}
		if exit == 0 {
			exit = st
		}
	}
	if sig != nil {
		rec.Signal = sig.String()
	}
	return exit, nil
}

// sleep waits for d, or for SIGTERM or SIGINT, which it returns.
func sleep(d time.Duration) os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(ch)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case s := <-ch:
		return s
	case <-ctx.Done():
		return nil
	}
}

// checkLock checks the descriptor stage0 handed over: it must name the
// pod directory, the directory must be locked (a fresh open cannot lock
// it), and the lock must be the descriptor's own (locking through it does
// not conflict). The descriptor stays open, holding the lock, until exit.
func checkLock(v, podDir string) stub.LockCheck {
	var c stub.LockCheck
	if v == "" {
		c.Err = stage1abi.EnvLockFD + " is not set"
		return c
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		c.Err = fmt.Sprintf("%s=%q is not a descriptor number", stage1abi.EnvLockFD, v)
		return c
	}
	c.FD = fd
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		c.Err = fmt.Sprintf("descriptor %d: %v", fd, err)
		return c
	}
	if err := unix.Stat(podDir, &want); err != nil {
		c.Err = fmt.Sprintf("pod directory: %v", err)
		return c
	}
	if c.PodDir = got.Dev == want.Dev && got.Ino == want.Ino; !c.PodDir {
		c.Err = fmt.Sprintf("descriptor %d is not on the pod directory", fd)
		return c
	}
	fresh, err := unix.Open(podDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		c.Err = fmt.Sprintf("open pod directory: %v", err)
		return c
	}
	err = unix.Flock(fresh, unix.LOCK_EX|unix.LOCK_NB)
	_ = unix.Close(fresh) // releases the lock if it got it
	switch {
	case err == nil:
		c.Err = "the pod directory is not locked"
		return c
	case !errors.Is(err, unix.EWOULDBLOCK):
		c.Err = fmt.Sprintf("probe the pod lock: %v", err)
		return c
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		c.Err = fmt.Sprintf("descriptor %d does not hold the pod lock: %v", fd, err)
		return c
	}
	c.Held = true
	return c
}

// other records an entrypoint other than run; stop also signals the pod.
func other(rec *stub.Record, podDir string) (int, error) {
	pm, err := readManifest(podDir, rec)
	if err != nil {
		return 0, err
	}
	rec.PodManifest = nil // run has it; keep the other records short
	if rec.Entrypoint == stub.Stop {
		if err := signalPod(podDir, slices.Contains(rec.Args, "--"+stage1abi.FlagStopForce) || slices.Contains(rec.Args, "--"+stage1abi.FlagStopForce+"=true")); err != nil {
			return 0, err
		}
	}
	if v, ok := pm.Annotations.Get(stub.AnnotationFail); ok && slices.Contains(strings.Split(v, ","), rec.Entrypoint) {
		rec.Error = "failing as asked by " + stub.AnnotationFail
		return 1, nil
	}
	return 0, nil
}

func signalPod(podDir string, force bool) error {
	b, err := os.ReadFile(filepath.Join(podDir, stage1abi.PIDFile)) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return fmt.Errorf("read pod pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 1 {
		return fmt.Errorf("pod pid %q is not a pid", b)
	}
	sig := unix.SIGTERM
	if force {
		sig = unix.SIGKILL
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal pod process %d: %w", pid, err)
	}
	return nil
}

// writeFile replaces podDir/rel with data: a temporary file, then rename.
func writeFile(podDir, rel string, data []byte) error {
	path := filepath.Join(podDir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// appendRecord appends rec as one JSON line (one write, O_APPEND).
func appendRecord(podDir string, rec stub.Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(podDir, stub.RecordFile(rec.Entrypoint)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return nil
}
