package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/isolate/cgroup"
)

// The root tests re-execute the test binary twice, the way a stage1
// starts an app:
//
//	test ──exec.Cmd──▶ helper (roleEnv=helper) ──isolate.Exec──▶ probe (roleEnv=probe)
//	                   (or, with startEnv, Prepare and Start on
//	                   a thread of its own, then waits for the
//	                   probe and exits 128+N when signal N
//	                   killed it)
//	                   reads the policy and creds                does the operations of
//	                   from the environment, waits for a          the test case and prints
//	                   byte on stdin if asked (so the test        a probeResult as JSON
//	                   can move it into a cgroup first)           on stdout
//
// The probe is the same binary, exec'd through /proc/self/exe so that a
// non-root probe needs no access to the build directory.
const (
	roleEnv   = "NSCN_ISOLATE_TEST_ROLE"
	policyEnv = "NSCN_ISOLATE_TEST_POLICY"
	credsEnv  = "NSCN_ISOLATE_TEST_CREDS" //nolint:gosec // G101: an environment variable's name; "uid:gid"
	waitEnv   = "NSCN_ISOLATE_TEST_WAIT"
	chownEnv  = "NSCN_ISOLATE_TEST_CHOWN" // a file to chown to 1234:1234
	mkdirEnv  = "NSCN_ISOLATE_TEST_MKDIR" // a directory to create
	startEnv  = "NSCN_ISOLATE_TEST_START" // start the probe with Prepared.Start
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "helper":
		helperMain()
		os.Exit(3) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	case "probe":
		os.Exit(probeMain()) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

// helperMain returns only when it cannot exec the probe.
func helperMain() {
	var p Policy
	if err := json.Unmarshal([]byte(os.Getenv(policyEnv)), &p); err != nil {
		fmt.Fprintln(os.Stderr, "helper: decode policy:", err)
		return
	}
	var c Creds
	if v := os.Getenv(credsEnv); v != "" {
		u, g, _ := strings.Cut(v, ":")
		uid, _ := strconv.Atoi(u)
		gid, _ := strconv.Atoi(g)
		c = Creds{UID: uint32(uid), GID: uint32(gid)} //nolint:gosec // G115: the test passes small ids
	}
	if os.Getenv(waitEnv) != "" {
		if _, err := io.ReadFull(os.Stdin, make([]byte, 1)); err != nil {
			fmt.Fprintln(os.Stderr, "helper: wait:", err)
			return
		}
	}
	env := []string{roleEnv + "=probe"}
	for _, k := range []string{chownEnv, mkdirEnv} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	cfg := ExecConfig{
		Path:              "/proc/self/exe",
		Args:              []string{"probe"},
		Env:               env,
		Dir:               "/",
		Creds:             c,
		ParentDeathSignal: syscall.SIGKILL,
	}
	if os.Getenv(startEnv) != "" {
		cfg.ParentDeathSignal = 0
		os.Exit(startProbe(&p, cfg)) //nolint:forbidigo // the helper role's own status
	}
	err := Exec(&p, cfg)
	fmt.Fprintln(os.Stderr, "helper:", err)
}

// startProbe starts the probe with Prepare and Start from a thread of
// its own, checks that this thread kept root, every capability it had
// and no filter, and returns the status to exit with: the probe's, or
// 128+N when signal N killed it.
func startProbe(p *Policy, cfg ExecConfig) int {
	runtime.LockOSThread() // so that the confined thread is another
	type started struct {
		pid int
		err error
	}
	ch := make(chan started, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends confined
		pr, err := Prepare(p)
		if err != nil {
			ch <- started{err: err}
			return
		}
		pid, err := pr.Start(cfg, []uintptr{0, 1, 2})
		ch <- started{pid, err}
	}()
	r := <-ch
	if r.err != nil {
		fmt.Fprintln(os.Stderr, "helper:", r.err)
		return 3
	}
	st, err := os.ReadFile("/proc/thread-self/status")
	if err != nil || !strings.Contains(string(st), "\nUid:\t0\t0\t0\t0\n") || !strings.Contains(string(st), "\nSeccomp:\t0\n") ||
		!strings.Contains(string(st), "\nNoNewPrivs:\t0\n") {
		fmt.Fprintf(os.Stderr, "helper: the thread that did not start the probe was confined too (%v):\n%s", err, st)
		_ = unix.Kill(r.pid, unix.SIGKILL)
		return 4
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(r.pid, &ws, 0, nil); err != nil {
		fmt.Fprintln(os.Stderr, "helper: wait:", err)
		return 3
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// probeResult is what the probe saw of itself. Operation results are
// "ok" or the errno name.
type probeResult struct {
	Status      map[string]string `json:"status"` // selected /proc/self/status lines
	OOMScoreAdj string            `json:"oomScoreAdj"`
	Cwd         string            `json:"cwd"`
	Chown       string            `json:"chown,omitempty"`
	Mkdir       string            `json:"mkdir,omitempty"`
	Uname       string            `json:"uname"`
	Cgroup      *cgroup.Limits    `json:"cgroup,omitempty"`
	CgroupErr   string            `json:"cgroupErr,omitempty"`
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func probeMain() int {
	var r probeResult
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 3
	}
	r.Status = map[string]string{}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			r.Status[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	oom, _ := os.ReadFile("/proc/self/oom_score_adj")
	r.OOMScoreAdj = strings.TrimSpace(string(oom))
	r.Cwd, _ = os.Getwd()
	if p := os.Getenv(chownEnv); p != "" {
		r.Chown = outcome(unix.Chown(p, 1234, 1234))
	}
	if p := os.Getenv(mkdirEnv); p != "" {
		r.Mkdir = outcome(unix.Mkdir(p, 0o755))
	}
	var u unix.Utsname
	r.Uname = outcome(unix.Uname(&u))
	if l, err := cgroup.Current(); err == nil {
		r.Cgroup = &l
	} else {
		r.CgroupErr = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(&r); err != nil {
		return 3
	}
	return 0
}
