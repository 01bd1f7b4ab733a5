package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/lock"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/tests/stub-stage1/stub"
)

// envAsStub makes the test binary act as the stub (TestMain).
const envAsStub = "NSCN_TEST_AS_STUB_STAGE1"

func TestMain(m *testing.M) {
	if os.Getenv(envAsStub) == "1" {
		os.Exit(stubMain(os.Args)) //nolint:forbidigo // TestMain is the test binary's main: the child role exits with its own status
	}
	// Returning passes m.Run's status to os.Exit.
	m.Run()
}

const podUUID = "0b5e7c3a-8f2d-4d1e-9a6b-3c2f1e0d9b8a"

// app is one app of a test pod manifest.
type app struct {
	name   string
	status string // the stub exit-status annotation, if set
}

// writePod writes a pod manifest in a new pod directory.
func writePod(t *testing.T, apps []app, podAnnotations map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	type ann struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type ra struct {
		Name        string `json:"name"`
		Image       any    `json:"image"`
		Annotations []ann  `json:"annotations,omitempty"`
	}
	pm := struct {
		ACVersion   string `json:"acVersion"`
		ACKind      string `json:"acKind"`
		Apps        []ra   `json:"apps"`
		Annotations []ann  `json:"annotations,omitempty"`
	}{ACVersion: "0.8.11", ACKind: "PodManifest", Apps: []ra{}}
	for _, a := range apps {
		r := ra{Name: a.name, Image: map[string]string{"id": "sha512-" + strings.Repeat("ab", 64)}}
		if a.status != "" {
			r.Annotations = []ann{{Name: stub.AnnotationExitStatus, Value: a.status}}
		}
		pm.Apps = append(pm.Apps, r)
	}
	for k, v := range podAnnotations {
		pm.Annotations = append(pm.Annotations, ann{Name: k, Value: v})
	}
	b, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stage1abi.PodManifestFile), b, 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stubCmd runs the test binary as the stub, with argv[0] as given, in dir.
func stubCmd(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0]) //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
	cmd.Args = argv
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envAsStub+"=1")
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run stub: %v", err)
	}
	return ee.ExitCode()
}

func onlyRecord(t *testing.T, dir, ep string) stub.Record {
	t.Helper()
	recs, err := stub.ReadRecords(dir, ep)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d %s records, want 1", len(recs), ep)
	}
	return recs[0]
}

func readStatus(t *testing.T, dir, app string) (int, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stage1abi.AppStatusFile(app))) //nolint:gosec // G304: a file the test made
	if errors.Is(err, os.ErrNotExist) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n, true
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		apps []app
		// lock says how stage0 behaves: "handed" (the right way), "none"
		// (no RKT_LOCK_FD), "unlocked" (a descriptor on the pod directory
		// without the lock), "other" (the lock is held by someone else),
		// "elsewhere" (a locked descriptor on another directory), "bad"
		// (RKT_LOCK_FD is not a number).
		lock         string
		wantExit     int
		wantStatuses map[string]int
		wantLockErr  string
	}{
		{
			name: "all succeed", lock: "handed",
			apps: []app{{name: "web"}, {name: "db"}}, wantExit: 0,
			wantStatuses: map[string]int{"web": 0, "db": 0},
		},
		{
			name: "first non-zero status wins", lock: "handed",
			apps: []app{{name: "web"}, {name: "fail-3"}, {name: "fail-7"}}, wantExit: 3,
			wantStatuses: map[string]int{"web": 0, "fail-3": 3, "fail-7": 7},
		},
		{
			name: "annotation wins over the name", lock: "handed",
			apps: []app{{name: "fail-3", status: "0"}, {name: "web", status: "42"}}, wantExit: 42,
			wantStatuses: map[string]int{"fail-3": 0, "web": 42},
		},
		{name: "no lock fd", lock: "none", apps: []app{{name: "web"}}, wantExit: stage1abi.ExitRuntime, wantLockErr: "is not set"},
		{name: "bad lock fd", lock: "bad", apps: []app{{name: "web"}}, wantExit: stage1abi.ExitRuntime, wantLockErr: "not a descriptor number"},
		{name: "descriptor without the lock", lock: "unlocked", apps: []app{{name: "web"}}, wantExit: stage1abi.ExitRuntime, wantLockErr: "not locked"},
		{name: "lock held by someone else", lock: "other", apps: []app{{name: "web"}}, wantExit: stage1abi.ExitRuntime, wantLockErr: "does not hold the pod lock"},
		{name: "descriptor on another directory", lock: "elsewhere", apps: []app{{name: "web"}}, wantExit: stage1abi.ExitRuntime, wantLockErr: "not on the pod directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writePod(t, tt.apps, nil)
			args := []string{"/pod/stage1/rootfs/stub-stage1/bin/run", "--net=default", "--debug", podUUID}
			cmd := stubCmd(t, dir, args...)
			cmd.Env = append(cmd.Env, stage1abi.EnvStage1Debug+"=true")
			var l *lock.File
			var err error
			switch tt.lock {
			case "handed", "unlocked", "other":
				l, err = lock.Open(dir, lock.Dir)
				if err == nil && tt.lock == "handed" {
					err = l.TryExclusiveLock()
				}
				if err == nil && tt.lock == "other" {
					other, oerr := lock.TryExclusiveLock(dir, lock.Dir)
					if oerr != nil {
						t.Fatal(oerr)
					}
					defer func() { _ = other.Close() }()
				}
			case "elsewhere":
				l, err = lock.TryExclusiveLock(t.TempDir(), lock.Dir)
			case "bad":
				cmd.Env = append(cmd.Env, stage1abi.EnvLockFD+"=three")
			}
			if err != nil {
				t.Fatal(err)
			}
			if l != nil {
				f, err := l.Dup()
				if err != nil {
					t.Fatal(err)
				}
				cmd.ExtraFiles = []*os.File{f}
				cmd.Env = append(cmd.Env, stage1abi.EnvLockFD+"=3")
				defer func() { _ = f.Close() }()
				defer func() { _ = l.Close() }()
			}
			out, err := cmd.CombinedOutput()
			if got := exitCode(t, err); got != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", got, tt.wantExit, out)
			}
			rec := onlyRecord(t, dir, stub.Run)
			if rec.Entrypoint != stub.Run || rec.Argv0 != args[0] || strings.Join(rec.Args, " ") != strings.Join(args[1:], " ") {
				t.Errorf("record argv = %q %q", rec.Argv0, rec.Args)
			}
			if rec.Cwd != dir || rec.Exit != tt.wantExit || rec.PID == 0 {
				t.Errorf("record cwd %q exit %d pid %d", rec.Cwd, rec.Exit, rec.PID)
			}
			if rec.Env[stage1abi.EnvStage1Debug] != "true" {
				t.Errorf("record env = %v", rec.Env)
			}
			if len(rec.PodManifest) == 0 {
				t.Error("pod manifest not recorded")
			}
			if rec.Lock == nil {
				t.Fatal("no lock check recorded")
			}
			_, exitedErr := os.Stat(filepath.Join(dir, stage1abi.ExitedMarker))
			if tt.wantLockErr != "" {
				if rec.Lock.Held || !strings.Contains(rec.Lock.Err, tt.wantLockErr) || rec.Error == "" {
					t.Errorf("lock check = %+v, error %q; want %q", rec.Lock, rec.Error, tt.wantLockErr)
				}
				if _, ok := readStatus(t, dir, "web"); ok {
					t.Error("statuses written despite a bad handshake")
				}
				if exitedErr == nil {
					t.Error("exited marker written despite a bad handshake")
				}
				return
			}
			if !rec.Lock.Held || !rec.Lock.PodDir || rec.Lock.FD != 3 {
				t.Errorf("lock check = %+v", rec.Lock)
			}
			pid, err := os.ReadFile(filepath.Join(dir, stage1abi.PIDFile)) //nolint:gosec // G304: a file the test made
			if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(rec.PID) {
				t.Errorf("pid file %q, %v; record pid %d", pid, err, rec.PID)
			}
			for a, want := range tt.wantStatuses {
				if got, ok := readStatus(t, dir, a); !ok || got != want {
					t.Errorf("status of %s = %d (written %v), want %d", a, got, ok, want)
				}
				if rec.Statuses[a] != want {
					t.Errorf("recorded status of %s = %d, want %d", a, rec.Statuses[a], want)
				}
			}
			if exitedErr != nil {
				t.Errorf("exited marker: %v", exitedErr)
			}
		})
	}
}

// TestRunSleepsUntilStopped: a pod annotated to sleep runs until the stop
// entrypoint signals it; apps without a status rule report the signal.
func TestRunSleepsUntilStopped(t *testing.T) {
	dir := writePod(t, []app{{name: "web"}, {name: "fail-4"}}, map[string]string{stub.AnnotationSleep: "60s"})
	l, err := lock.TryExclusiveLock(dir, lock.Dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.Dup()
	if err != nil {
		t.Fatal(err)
	}
	run := stubCmd(t, dir, "run", podUUID)
	run.ExtraFiles = []*os.File{f}
	run.Env = append(run.Env, stage1abi.EnvLockFD+"=3")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	_ = l.Close() // the stub alone holds the lock now
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, stage1abi.PIDFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pid file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held, err := lock.HeldExclusively(dir, lock.Dir); err != nil || !held {
		t.Fatalf("pod not locked while the stub runs: %v, %v", held, err)
	}
	stop := stubCmd(t, dir, "stop", podUUID)
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if got := exitCode(t, run.Wait()); got != stage1abi.SignalStatusBase+int(syscall.SIGTERM) {
		t.Fatalf("run exited %d, want %d", got, stage1abi.SignalStatusBase+int(syscall.SIGTERM))
	}
	rec := onlyRecord(t, dir, stub.Run)
	if rec.Signal != syscall.SIGTERM.String() || rec.Statuses["fail-4"] != 4 {
		t.Errorf("record = %+v", rec)
	}
	if held, _ := lock.HeldExclusively(dir, lock.Dir); held {
		t.Error("pod still locked after run exited")
	}
	if s := onlyRecord(t, dir, stub.Stop); s.Exit != 0 {
		t.Errorf("stop record = %+v", s)
	}
}

func TestOtherEntrypoints(t *testing.T) {
	tests := []struct {
		name     string
		argv     []string
		fail     string // the fail annotation
		wantEP   string
		wantArgs []string
		wantExit int
	}{
		{name: "gc by argv0", argv: []string{"/x/gc", "--debug", podUUID}, wantEP: stub.GC, wantArgs: []string{"--debug", podUUID}},
		{name: "enter by argv0", argv: []string{"enter", "--pid=1", "--appname=web", "--", "/bin/sh"}, wantEP: stub.Enter, wantArgs: []string{"--pid=1", "--appname=web", "--", "/bin/sh"}},
		{name: "gc by first argument", argv: []string{"/x/stub", "gc", podUUID}, wantEP: stub.GC, wantArgs: []string{podUUID}},
		{name: "app-add", argv: []string{"app-add", "--app=web"}, wantEP: stub.AppAdd, wantArgs: []string{"--app=web"}},
		{name: "failing gc", argv: []string{"gc", podUUID}, fail: "stop,gc", wantEP: stub.GC, wantArgs: []string{podUUID}, wantExit: 1},
		{name: "unknown entrypoint", argv: []string{"/x/stub", "frobnicate"}, wantExit: stage1abi.ExitRuntime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ann := map[string]string{}
			if tt.fail != "" {
				ann[stub.AnnotationFail] = tt.fail
			}
			dir := writePod(t, []app{{name: "web"}}, ann)
			out, err := stubCmd(t, dir, tt.argv...).CombinedOutput()
			if got := exitCode(t, err); got != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", got, tt.wantExit, out)
			}
			if tt.wantEP == "" {
				return
			}
			rec := onlyRecord(t, dir, tt.wantEP)
			if strings.Join(rec.Args, "\x00") != strings.Join(tt.wantArgs, "\x00") || rec.Cwd != dir || rec.Exit != tt.wantExit {
				t.Errorf("record = %+v", rec)
			}
			if rec.Lock != nil || rec.PodManifest != nil {
				t.Errorf("%s recorded run-only fields", tt.wantEP)
			}
		})
	}
}

func TestStopForce(t *testing.T) {
	dir := writePod(t, []app{{name: "web"}}, nil)
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stage1abi.PIDFile), []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := stubCmd(t, dir, "stop", "--force=true", podUUID).CombinedOutput(); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	err := sleeper.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sleeper ended with %v, want SIGKILL", err)
	}
}
