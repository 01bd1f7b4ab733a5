package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/google/uuid"

	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/testutil"
)

// probeRun is one start of helper and probe.
type probeRun struct {
	policy *Policy
	uid    int // 0 for root
	// group, when set, receives the helper before it execs the probe.
	group cgroup.Group
	// start: the helper starts the probe with Prepared.Start instead
	// of becoming it with Exec.
	start bool
}

// runProbe starts the helper with the policy, lets it exec the probe and
// returns what the probe reported, or the signal that killed it.
func runProbe(t *testing.T, pr probeRun) (probeResult, syscall.Signal) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := json.Marshal(pr.policy)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Let a non-root probe reach the files, so that its failures come
	// from capabilities and filters, not from directory permissions.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil { //nolint:gosec // G302: a directory, which needs x to be searched
			t.Fatal(err)
		}
	}
	target := filepath.Join(dir, "file")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Env = []string{
		roleEnv + "=helper", policyEnv + "=" + string(pol),
		credsEnv + "=" + fmt.Sprintf("%d:%d", pr.uid, pr.uid),
		chownEnv + "=" + target, mkdirEnv + "=" + filepath.Join(dir, "sub"),
	}
	if pr.start {
		cmd.Env = append(cmd.Env, startEnv+"=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var release *os.File
	if pr.group != nil {
		cmd.Env = append(cmd.Env, waitEnv+"=1")
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = r.Close() }()
		defer func() { _ = w.Close() }()
		cmd.Stdin, release = r, w
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if pr.group != nil {
		if err := pr.group.Add(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal(err)
		}
		if _, err := release.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return probeResult{}, ws.Signal()
		}
		if c := ee.ExitCode(); pr.start && c > 128 && c <= 128+64 {
			return probeResult{}, syscall.Signal(c - 128)
		}
	}
	if err != nil {
		t.Fatalf("helper/probe: %v\nstderr: %s", err, stderr.String())
	}
	var res probeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("probe output %q: %v\nstderr: %s", stdout.String(), err, stderr.String())
	}
	return res, 0
}

// ownStatus returns a field of the test's own /proc/self/status.
func ownStatus(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return ""
}

// capHex is the /proc/self/status form of a capability set.
func capHex(s caps.Set) string { return fmt.Sprintf("%016x", uint64(s)) }

func policyOf(t *testing.T, isolators string, opts Options) *Policy {
	t.Helper()
	p, _, err := PolicyFor(appWith(t, isolators), opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecAppliesPolicy(t *testing.T) {
	testutil.RequiresRoot(t)
	// The test's own bounding set: the host may have dropped some
	// capabilities from it already.
	own := ownStatus(t, "CapBnd")
	def := caps.Default
	noChown := def.Remove(caps.Chown).Remove(caps.NetRaw)
	bindOnly := caps.Of(caps.NetBindService)

	// A retain-set of every syscall of this architecture but mkdir and
	// mkdirat: the Go probe runs, mkdir fails.
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	var most []string
	for name := range info.SyscallNames {
		if name != "mkdir" && name != "mkdirat" {
			most = append(most, name)
		}
	}
	mostJSON, _ := json.Marshal(most)

	tests := []struct {
		name    string
		policy  *Policy
		uid     int
		killed  syscall.Signal
		check   map[string]string // status key or operation → want
		cgroups bool
	}{
		{
			name:   "defaults as root",
			policy: policyOf(t, `[]`, Options{}),
			check: map[string]string{
				"CapBnd": capHex(def), "CapEff": capHex(def), "CapAmb": capHex(0),
				"NoNewPrivs": "0", "Seccomp": "2", "chown": "ok", "mkdir": "ok", "uname": "ok",
			},
		},
		{
			name:   "remove CAP_CHOWN and CAP_NET_RAW",
			policy: policyOf(t, `[{"name":"os/linux/capabilities-remove-set","value":{"set":["CAP_CHOWN","CAP_NET_RAW"]}}]`, Options{}),
			check:  map[string]string{"CapBnd": capHex(noChown), "CapEff": capHex(noChown), "chown": "EPERM"},
		},
		{
			name:   "defaults as a user",
			policy: policyOf(t, `[]`, Options{}),
			uid:    65534,
			check: map[string]string{
				"Uid": "65534 65534 65534 65534", "CapBnd": capHex(def), "CapEff": capHex(0),
				"CapPrm": capHex(0), "CapAmb": capHex(0), "chown": "EPERM",
			},
		},
		{
			name:   "retain-set gives a user ambient capabilities",
			policy: policyOf(t, `[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_NET_BIND_SERVICE"]}}]`, Options{}),
			uid:    65534,
			check: map[string]string{
				"CapBnd": capHex(bindOnly), "CapEff": capHex(bindOnly), "CapPrm": capHex(bindOnly),
				"CapAmb": capHex(bindOnly), "CapInh": capHex(bindOnly),
			},
		},
		{
			name:   "capabilities disabled",
			policy: policyOf(t, `[]`, Options{DisableCapabilities: true, DisableSeccomp: true}),
			check:  map[string]string{"CapBnd": own, "CapEff": own, "Seccomp": "0"},
		},
		{
			name:   "no-new-privileges",
			policy: policyOf(t, `[{"name":"os/linux/no-new-privileges","value":true}]`, Options{}),
			check:  map[string]string{"NoNewPrivs": "1"},
		},
		{
			name: "seccomp remove-set with errno, no_new_privs",
			policy: policyOf(t, `[{"name":"os/linux/no-new-privileges","value":true},
				{"name":"os/linux/seccomp-remove-set","value":{"errno":"ENOTSUP","set":["mkdir","mkdirat"]}}]`, Options{}),
			check: map[string]string{"mkdir": "ENOTSUP", "uname": "ok", "Seccomp": "2", "NoNewPrivs": "1"},
		},
		{
			name:   "seccomp remove-set as a user without no_new_privs",
			policy: policyOf(t, `[{"name":"os/linux/seccomp-remove-set","value":{"errno":"EPERM","set":["uname"]}}]`, Options{}),
			uid:    65534,
			// The executor kept CAP_SYS_ADMIN to load the filter; the
			// probe must not have it.
			check: map[string]string{"uname": "EPERM", "CapEff": capHex(0), "CapBnd": capHex(def), "NoNewPrivs": "0"},
		},
		{
			name:   "seccomp without errno kills",
			policy: policyOf(t, `[{"name":"os/linux/seccomp-remove-set","value":{"set":["uname"]}}]`, Options{}),
			killed: syscall.SIGSYS,
		},
		{
			name:   "seccomp without errno kills, mkdir",
			policy: policyOf(t, `[{"name":"os/linux/seccomp-remove-set","value":{"set":["mkdir","mkdirat"]}}]`, Options{}),
			killed: syscall.SIGSYS,
		},
		{
			name:   "seccomp retain-set",
			policy: policyOf(t, `[{"name":"os/linux/seccomp-retain-set","value":{"errno":"EPERM","set":`+string(mostJSON)+`}}]`, Options{}),
			check:  map[string]string{"mkdir": "EPERM", "uname": "ok", "chown": "ok"},
		},
		{
			name:   "oom score",
			policy: policyOf(t, `[{"name":"os/linux/oom-score-adj","value":500}]`, Options{}),
			check:  map[string]string{"oom": "500"},
		},
		{
			name: "resource limits in a cgroup",
			policy: policyOf(t, `[{"name":"resource/memory","value":{"limit":"64Mi"}},
				{"name":"resource/cpu","value":{"limit":"500m"}},
				{"name":"os/linux/cpu-shares","value":512}]`, Options{}),
			cgroups: true,
			check:   map[string]string{"memory": strconv.Itoa(64 << 20), "cpuQuota": "50000"},
		},
	}
	for _, tt := range tests {
		for _, start := range []bool{false, true} {
			name := tt.name
			if start {
				if !StartSafe(tt.policy) {
					continue // Start refuses it: see TestStartRefusesUnsafePolicy
				}
				name += ", started"
			}
			t.Run(name, func(t *testing.T) {
				run := probeRun{policy: tt.policy, uid: tt.uid, start: start}
				if tt.cgroups {
					run.group = newTestGroup(t, tt.policy.Cgroup)
				}
				res, sig := runProbe(t, run)
				if sig != tt.killed {
					t.Fatalf("probe killed by %v, want %v", sig, tt.killed)
				}
				if tt.killed != 0 {
					return
				}
				if res.Cwd != "/" {
					t.Errorf("cwd %q, want /", res.Cwd)
				}
				for k, want := range tt.check {
					var got string
					switch k {
					case "chown":
						got = res.Chown
					case "mkdir":
						got = res.Mkdir
					case "uname":
						got = res.Uname
					case "oom":
						got = res.OOMScoreAdj
					case "memory", "cpuQuota":
						if res.Cgroup == nil {
							t.Fatalf("probe could not read its cgroup: %s", res.CgroupErr)
						}
						got = strconv.FormatInt(map[string]int64{"memory": res.Cgroup.MemoryMax, "cpuQuota": res.Cgroup.CPUQuota}[k], 10)
					default:
						got = res.Status[k]
					}
					if got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
			})
		}
	}
}

// newTestGroup creates a cgroup for one probe under the test's own
// cgroup (or the root cgroup on a v2 host, where the test's own one
// holds processes) and removes it, checking nothing is left, at cleanup.
func newTestGroup(t *testing.T, l cgroup.Limits) cgroup.Group {
	t.Helper()
	mgr, err := cgroup.Open(cgroup.Config{})
	if err == nil && mgr.Version() == 2 {
		mgr, err = cgroup.Open(cgroup.Config{Parent: "/"})
	}
	if err != nil {
		t.Fatalf("cgroups: %v", err)
	}
	top := "nscn-test-" + uuid.NewString()[:8]
	g, err := mgr.Create(context.Background(), top+"/pod/app", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Destroy(ctx); err != nil {
			t.Errorf("destroy: %v", err)
		}
		for _, d := range g.Dirs() {
			topDir := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(d))), top)
			if _, err := os.Stat(topDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind (%v)", topDir, err)
			}
		}
	})
	return g
}
