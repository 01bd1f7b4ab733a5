//go:build vm

package cgroupv2

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/kvm"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/vm"
)

func TestMain(m *testing.M) {
	// The harness probes KVM in a re-exec of this binary.
	if kvm.ProbeChild() {
		return
	}
	m.Run()
}

// bootTimeout bounds one boot: under TCG on two shared cores a boot with
// a few pods takes about a minute.
const bootTimeout = 4 * time.Minute

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the suite with `make vm-test`", name)
	}
	return v
}

var (
	machineOnce sync.Once
	machine     *vm.Machine
	machineErr  error
)

// newMachine returns the VM of this test binary, built once from the
// environment make sets.
func newMachine(t *testing.T) *vm.Machine {
	t.Helper()
	testutil.RequiresCommand(t, "qemu-system-x86_64")
	nscn := mustEnv(t, "NSCN_BIN")
	cfg := vm.Config{
		Kernel:  mustEnv(t, "NSCN_VM_KERNEL"),
		Init:    mustEnv(t, "NSCN_VM_INIT"),
		Busybox: os.Getenv("NSCN_VM_BUSYBOX"),
		Files: []vm.File{
			{Src: nscn, Dst: "/nscn/bin/nscn"},
			// nscn hands the first run of an image file (its import)
			// to nscn-fetch, found beside it.
			{Src: filepath.Join(filepath.Dir(nscn), "nscn-fetch"), Dst: "/nscn/bin/nscn-fetch"},
			{Src: filepath.Join(filepath.Dir(nscn), "stage1-fly.aci"), Dst: "/nscn/bin/stage1-fly.aci"},
			{Src: mustEnv(t, "NSCN_STAGE1_NSPAWN_ACI"), Dst: "/nscn/bin/stage1-nspawn.aci"},
			{Src: filepath.Join(mustEnv(t, "NSCN_IMAGES"), "busybox.aci"), Dst: "/nscn/images/busybox.aci"},
		},
		CacheDir: mustEnv(t, "NSCN_VM_CACHE"),
		Accel:    os.Getenv("NSCN_VM_ACCEL"),
	}
	if cfg.Busybox == "" {
		cfg.Busybox = "/bin/busybox"
	}
	machineOnce.Do(func() { machine, machineErr = vm.New(cfg) })
	if machineErr != nil {
		t.Fatal(machineErr)
	}
	return machine
}

// prelude is put before every script: nscn with the VM's store and the
// test images' trust, and nscnRun, which runs one nscn command and prints
// its stdout, stderr and exit status as sections (see sections).
const prelude = `set -u
nscn() { "$NSCN_BIN" --dir /var/lib/nscn --insecure-options=image "$@"; }
section() { echo "== $1 =="; }
# nscnRun ID ARGS...: nscn ARGS, reported as sections ID.stdout,
# ID.stderr and ID.status.
nscnRun() {
	id=$1
	shift
	nscn "$@" >"/tmp/$id.out" 2>"/tmp/$id.err"
	rc=$?
	section "$id.stdout"; cat "/tmp/$id.out"
	section "$id.stderr"; cat "/tmp/$id.err"
	section "$id.status"; echo "$rc"
}
`

// boot runs scripts in one VM and returns the results by script name.
// Each script gets the prelude and ends with "exit 0": its commands report
// their statuses in sections, and a non-zero exit means the script itself
// broke (an unset variable, say). The console goes to NSCN_VM_CACHE/logs/TEST.log;
// if the test fails, its tail is in the test log too.
func boot(t *testing.T, scripts ...vm.Script) map[string]vm.Result {
	t.Helper()
	m := newMachine(t)
	logs := filepath.Join(mustEnv(t, "NSCN_VM_CACHE"), "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(logs, strings.ReplaceAll(t.Name(), "/", "_")+".log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644) //nolint:gosec // G304: the test's log in the VM cache directory
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	for i := range scripts {
		scripts[i].Body = prelude + scripts[i].Body + "\nexit 0\n"
	}
	ctx, cancel := context.WithTimeout(t.Context(), bootTimeout)
	defer cancel()
	run, err := m.Boot(ctx, t.TempDir(), logFile, scripts)
	if err != nil {
		t.Fatalf("boot (console log %s): %v", logPath, err)
	}
	t.Logf("VM up in %s (kernel and init, uptime), qemu ran %s, accelerator %s (%s); console log %s",
		run.Boot.Round(10*time.Millisecond), run.Wall.Round(10*time.Millisecond), run.Accel, run.AccelReason, logPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console tail:\n%s", run.Tail(60))
		}
	})
	out := map[string]vm.Result{}
	for _, r := range run.Results {
		out[r.Name] = r
	}
	return out
}

// sections splits a script's output at its "== NAME ==" lines into the
// text under each NAME, without the last newline.
func sections(output string) map[string]string {
	out := map[string]string{}
	var name string
	var b strings.Builder
	flush := func() {
		if name != "" {
			out[name] = strings.TrimSuffix(b.String(), "\n")
		}
		b.Reset()
	}
	for line := range strings.Lines(output) {
		l := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(l, "== ") && strings.HasSuffix(l, " ==") && len(l) > 6 {
			flush()
			name = l[3 : len(l)-3]
			continue
		}
		b.WriteString(line)
	}
	flush()
	return out
}

// result finds a script's result, failing the test if it has none or
// if the script itself failed.
func result(t *testing.T, results map[string]vm.Result, name string) map[string]string {
	t.Helper()
	r, ok := results[name]
	if !ok {
		t.Fatalf("no result for script %s", name)
	}
	if r.Status != 0 {
		t.Fatalf("script %s exited %d:\n%s", name, r.Status, r.Output)
	}
	return sections(r.Output)
}
