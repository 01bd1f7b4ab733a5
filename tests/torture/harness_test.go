//go:build torture

package torture

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
)

var (
	seedFlag     = flag.Uint64("seed", 0, "seed of the random choices (0: from $NSCN_TORTURE_SEED, else the clock)")
	trialsFlag   = flag.Int("trials", 0, "crash trials (0: 200, or 20 with -test.short)")
	fuzzTimeFlag = flag.Duration("fuzztime", 0, "how long to fuzz manifests (0: 1m, or 10s with -test.short)")
)

// callTimeout bounds every nscn call: a call that takes longer hangs.
const callTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	// Orphans of killed pods are reparented to this process instead of
	// to init, so a pod process that outlives its stage1 is seen (and
	// reaped) here; see leftoverProcesses.
	if os.Geteuid() == 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintf(os.Stderr, "torture: set child subreaper: %v\n", err)
			os.Exit(1) //nolint:forbidigo // TestMain is the test binary's main: no test can run without the subreaper
		}
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

// runSeed is the seed of this run: one for every test, so that one -seed
// replays the whole run.
var runSeed = sync.OnceValues(func() (uint64, error) {
	s := *seedFlag
	if s == 0 {
		if v := os.Getenv("NSCN_TORTURE_SEED"); v != "" {
			var err error
			if s, err = strconv.ParseUint(v, 10, 64); err != nil {
				return 0, fmt.Errorf("NSCN_TORTURE_SEED=%q: %w", v, err)
			}
		}
	}
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	return s, nil
})

// seed returns the seed of this run, printed by every test that uses it,
// so that a failure can be replayed with -seed.
func seed(t *testing.T) uint64 {
	t.Helper()
	s, err := runSeed()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (replay with -seed=%d or NSCN_TORTURE_SEED=%d)", s, s, s)
	return s
}

// newRand returns a generator for one test, derived from the run's seed
// and the test's name, so tests do not disturb each other's sequences.
func newRand(t *testing.T, s uint64) *rand.Rand {
	h := uint64(14695981039346656037)
	for _, c := range []byte(t.Name()) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(s, h)) //nolint:gosec // G404: deterministic data from a fixed seed, not a secret
}

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the suite with `make torture`", name)
	}
	return v
}

func nscnBin(t *testing.T) string   { return mustEnv(t, "NSCN_BIN") }
func imagesDir(t *testing.T) string { return mustEnv(t, "NSCN_IMAGES") }
func actool(t *testing.T) string    { return mustEnv(t, "NSCN_ACTOOL") }
func busybox(t *testing.T) string   { return filepath.Join(imagesDir(t), "busybox.aci") }

// env is one isolated nscn installation: its own data and config dirs.
type env struct {
	t      *testing.T
	bin    string
	root   string
	dir    string
	local  string
	system string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	root := t.TempDir()
	e := &env{t: t, bin: nscnBin(t), root: root, dir: filepath.Join(root, "data"), local: filepath.Join(root, "etc"), system: filepath.Join(root, "lib")}
	for _, d := range []string{e.local, e.system} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The generic tests run their pods with the fly flavor, the quicker
	// one: the system config names it the default. The nspawn tests pick
	// their stage1 by flag; TestDefaultStage1IsNspawn removes this file.
	testutil.WriteStage1Default(t, e.system, filepath.Join(filepath.Dir(nscnBin(t)), "stage1-fly.aci"))
	// Registered after t.TempDir, so it runs before the removal: a failed
	// test must not leak pod mounts or processes.
	t.Cleanup(func() {
		killUnder(e.dir)
		if err := mountplan.UnmountAll(context.Background(), root); err != nil {
			t.Errorf("unmount test pods: %v", err)
		}
	})
	return e
}

type result struct {
	args           []string
	stdout, stderr string
	code           int
	signaled       bool
	timedOut       bool
	took           time.Duration
	maxRSS         int64 // bytes, the peak resident set of nscn
}

func (r result) String() string {
	return fmt.Sprintf("nscn %s: exit %d (took %v)\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// panicked reports whether the Go runtime printed a panic or a fatal
// error with goroutine traces.
func (r result) panicked() bool {
	return strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "fatal error:")
}

// cmd builds an nscn command with this env's global flags.
func (e *env) cmd(args ...string) *exec.Cmd {
	all := append([]string{"--dir", e.dir, "--local-config", e.local, "--system-config", e.system}, args...)
	c := exec.Command(e.bin, all...) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	c.Env = append(os.Environ(), "LC_ALL=C")
	return c
}

// run runs nscn to the end, or until timeout (then it is killed and the
// result says timedOut).
func (e *env) run(timeout time.Duration, args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	if err := c.Start(); err != nil {
		e.t.Fatalf("start nscn %v: %v", args, err)
	}
	tracked.Store(c.Process.Pid, true)
	defer tracked.Delete(c.Process.Pid)
	timer := time.AfterFunc(timeout, func() { _ = c.Process.Kill() })
	err := c.Wait()
	timedOut := !timer.Stop()
	return e.result(args, c, err, &out, &errb, time.Since(start), timedOut)
}

func (e *env) result(args []string, c *exec.Cmd, err error, out, errb *bytes.Buffer, took time.Duration, timedOut bool) result {
	e.t.Helper()
	r := result{args: args, stdout: out.String(), stderr: errb.String(), took: took, timedOut: timedOut}
	if c.ProcessState != nil {
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10
		}
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			e.t.Fatalf("run nscn %v: %v", args, err)
		}
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signaled = true
		}
	}
	return r
}

// ok runs nscn and fails the test unless it exits 0 in time, without a
// panic.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(callTimeout, args...)
	if r.timedOut {
		e.t.Fatalf("hang: killed after %v\n%s", callTimeout, r)
	}
	if r.code != 0 || r.panicked() {
		e.t.Fatalf("%s", r)
	}
	return r
}

// killed is one nscn run interrupted by SIGKILL.
type killed struct {
	result
	landed bool // the kill hit a live process (not one that had already exited)
}

// runKilled starts nscn and SIGKILLs it after delay. The kill may land
// after the command finished; landed says which.
func (e *env) runKilled(delay time.Duration, args ...string) killed {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	if err := c.Start(); err != nil {
		e.t.Fatalf("start nscn %v: %v", args, err)
	}
	tracked.Store(c.Process.Pid, true)
	defer tracked.Delete(c.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(delay):
		_ = c.Process.Signal(syscall.SIGKILL)
		select {
		case err = <-done:
		case <-time.After(callTimeout):
			e.t.Fatalf("nscn %v did not die after SIGKILL", args)
		}
	}
	r := e.result(args, c, err, &out, &errb, time.Since(start), false)
	return killed{result: r, landed: r.signaled}
}

// imageVerify runs `nscn image verify --format=json` and returns what it
// found wrong; it fails the test if verify cannot run at all.
func (e *env) imageVerify() []string {
	e.t.Helper()
	r := e.run(callTimeout, "image", "verify", "--format=json")
	if r.timedOut || r.panicked() {
		e.t.Fatalf("image verify: %s", r)
	}
	var results []struct {
		Kind, Key, Problem string
		OK                 bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil {
		return []string{fmt.Sprintf("image verify printed no JSON (%v): %s", err, r)}
	}
	var bad []string
	for _, v := range results {
		if !v.OK {
			bad = append(bad, fmt.Sprintf("%s %s: %s", v.Kind, v.Key, v.Problem))
		}
	}
	if r.code != 0 && len(bad) == 0 {
		bad = append(bad, r.String())
	}
	return bad
}

// blobsMatchTheirNames hashes every blob file in the store itself (not
// through nscn) and lists those whose content is not what their name
// says.
func (e *env) blobsMatchTheirNames() []string {
	e.t.Helper()
	var bad []string
	root := filepath.Join(e.dir, "cas", "blob")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		f, err := os.Open(p) //nolint:gosec // G304: a file the test made
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		defer func() { _ = f.Close() }()
		h := sha512.New()
		if _, err := io.Copy(h, f); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p, err))
			return nil
		}
		sum := "sha512-" + hex.EncodeToString(h.Sum(nil))
		if !strings.HasPrefix(sum, name) || len(name) < len("sha512-")+64 {
			bad = append(bad, fmt.Sprintf("blob %s holds content hashing to %s", p, sum[:len("sha512-")+64]))
		}
		return nil
	})
	return bad
}

// pods lists the pod directories (state/uuid), and separately the
// leftovers of interrupted creations (embryo/.new-*).
func (e *env) pods() (pods, news []string) {
	ents, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	for _, p := range ents {
		rel, _ := filepath.Rel(filepath.Join(e.dir, "pods"), p)
		if strings.HasPrefix(filepath.Base(p), ".new-") {
			news = append(news, rel)
			continue
		}
		pods = append(pods, rel)
	}
	return pods, news
}

// mounts lists the mounts at or below the data dir.
func (e *env) mounts() []string {
	e.t.Helper()
	m, err := mountplan.MountPointsUnder(context.Background(), e.dir)
	if err != nil {
		e.t.Fatalf("read mounts: %v", err)
	}
	return m
}

// tempLeftovers lists what interrupted imports and renders left: image
// gc must have removed all of it.
func (e *env) tempLeftovers() []string {
	var out []string
	for _, pat := range []string{
		filepath.Join(e.dir, "cas", "tmp", "*"),
		filepath.Join(e.dir, "cas", "tree", ".tmp-*"),
		filepath.Join(e.dir, "cas", "tree", ".trash-*"),
		filepath.Join(e.dir, "tmp", "*", "*"),
	} {
		m, _ := filepath.Glob(pat)
		out = append(out, m...)
	}
	return out
}

// tracked holds the pids of the commands this process started that may
// still be running, so the orphan scan does not take them for orphans.
var tracked sync.Map

// procInfo is what the scan learned of one process.
type procInfo struct {
	pid       int
	ppid      int
	state     string
	comm      string
	root, cwd string
}

func (p procInfo) String() string {
	return fmt.Sprintf("pid %d (%s, state %s, ppid %d, root %s, cwd %s)", p.pid, p.comm, p.state, p.ppid, p.root, p.cwd)
}

func readProc(pid int) (procInfo, bool) {
	p := procInfo{pid: pid}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return p, false
	}
	p.comm = s[open+1 : closing]
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return p, false
	}
	p.state = f[0]
	p.ppid, _ = strconv.Atoi(f[1])
	p.root, _ = os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	p.cwd, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return p, true
}

func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// leftoverProcesses finds the processes a pod left behind: any live
// process whose root or cwd is under dir, and any live orphan reparented
// to this process (the subreaper) that it did not start. Orphans that are
// already zombies are reaped (a pod process killed by its Pdeathsig ends
// up here, legitimately). A process gets settle to die before it counts:
// SIGKILL through Pdeathsig is not instantaneous.
func leftoverProcesses(dir string, settle time.Duration) []procInfo {
	self := os.Getpid()
	deadline := time.Now().Add(settle)
	for {
		var live []procInfo
		for _, p := range allProcs() {
			orphan := false
			if p.ppid == self {
				_, mine := tracked.Load(p.pid)
				orphan = !mine
			}
			if p.state == "Z" {
				if orphan {
					var ws unix.WaitStatus
					_, _ = unix.Wait4(p.pid, &ws, unix.WNOHANG, nil)
				}
				continue
			}
			if orphan || under(p.root, dir) || under(p.cwd, dir) {
				live = append(live, p)
			}
		}
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killUnder kills what leftoverProcesses finds, so that a failed test
// does not leave processes behind.
func killUnder(dir string) {
	for _, p := range leftoverProcesses(dir, 0) {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	_ = leftoverProcesses(dir, time.Second)
}

// sentinel is a directory outside every target that hostile input aims
// at; nothing may ever change in it.
type sentinel struct {
	dir     string
	canary  string
	content string
	ino     uint64
}

func newSentinel(t *testing.T) *sentinel {
	t.Helper()
	s := &sentinel{dir: t.TempDir(), content: "canary " + t.Name()}
	s.canary = filepath.Join(s.dir, "canary")
	if err := os.WriteFile(s.canary, []byte(s.content), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(s.canary, &st); err != nil {
		t.Fatal(err)
	}
	s.ino = st.Ino
	return s
}

// check returns what changed in the sentinel dir, if anything.
func (s *sentinel) check() []string {
	var bad []string
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return []string{fmt.Sprintf("read sentinel %s: %v", s.dir, err)}
	}
	for _, d := range ents {
		if d.Name() != "canary" {
			bad = append(bad, fmt.Sprintf("%s appeared in the sentinel dir", filepath.Join(s.dir, d.Name())))
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(s.canary, &st); err != nil {
		return append(bad, fmt.Sprintf("canary: %v", err))
	}
	if st.Ino != s.ino || st.Nlink != 1 || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Mode&0o7777 != 0o644 || st.Uid != 0 {
		bad = append(bad, fmt.Sprintf("canary changed: ino %d (was %d), nlink %d, mode %o, uid %d", st.Ino, s.ino, st.Nlink, st.Mode, st.Uid))
	}
	if b, err := os.ReadFile(s.canary); err != nil || string(b) != s.content {
		bad = append(bad, fmt.Sprintf("canary content changed: %q %v", b, err))
	}
	return bad
}
