//go:build functional

package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/internal/testutil/registrytest"
)

// updating says whether the binary runs with -update (the flag of
// internal/testutil's golden files): then the ratchet files are rewritten
// with the specs passing now.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// innerEnv marks the test process that runs in the private mount and
// network namespaces (TestCritest re-executes itself into them).
const innerEnv = "NSCN_CRI_INNER"

// registryHosts are the registries critest pulls from; the namespace's
// /etc/hosts sends them to the loopback registry.
var registryHosts = []string{"registry.k8s.io", "gcr.io", "k8s.gcr.io"}

// skip is the selection: what neither runtime can be asked for on these
// hosts (no SELinux, no AppArmor, no NRI plugin).
const skip = "SELinux|AppArmor|NRI"

// focusEnv, when set, is a ginkgo focus (a regular expression over spec
// names) for a developer's quick run: only nscn runs, only the specs it
// names, each printed with its state and reason; nothing is ratcheted and
// results.txt is left alone. make cri-test CRI_FOCUS=REGEX sets it.
const focusEnv = "NSCN_CRI_FOCUS"

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set; run the suite with `make cri-test`", name)
	}
	return v
}

// TestCritest runs critest against containerd and then against nscn cri,
// writes both runtimes' results side by side, and fails when a spec of
// containerd-passes.txt (the harness is broken) or of nscn-passes.txt (nscn
// regressed) no longer passes.
func TestCritest(t *testing.T) {
	testutil.RequiresRoot(t)
	// The peer, the registry, and what the harness and critest run.
	for _, c := range []string{"containerd", "containerd-shim-runc-v2", "runc", "docker-registry", "ip", "ipcmk", "ldd"} {
		testutil.RequiresCommand(t, c)
	}
	if os.Getenv(innerEnv) != "1" {
		reexecIsolated(t)
		return
	}
	ctx := t.Context()
	cache := mustEnv(t, "NSCN_CRI_CACHE")
	work := t.TempDir()
	// Registered after t.TempDir, so it runs before the removal: a spec
	// that fails half way (a mount propagation spec on a runtime that
	// refuses its mounts) leaves critest's own mounts under its test
	// directories, which only this namespace sees.
	t.Cleanup(func() {
		if err := mountplan.UnmountAll(context.Background(), work); err != nil {
			t.Errorf("unmount what the specs left: %v", err)
		}
	})
	isolate(t)

	st, err := readStandins(ctx, mustEnv(t, "NSCN_CRI_BUSYBOX"), mustEnv(t, "NSCN_CRI_STANDIN"))
	if err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(cache, "registry")
	key := st.key()
	cached, _ := os.ReadFile(filepath.Join(cache, "registry.key")) //nolint:gosec // G304: the cache under build/ make names
	if _, err := os.Stat(storage); err != nil {
		cached = nil // the key without the storage it describes
	}
	if strings.TrimSpace(string(cached)) != key {
		if err := os.RemoveAll(storage); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := registrytest.Start(ctx, filepath.Join(work, "registry"), registrytest.Options{
		TLS: true, Addr: "127.0.0.1:443", DNSNames: registryHosts, Storage: storage, Quiet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Stop(); err != nil {
			t.Error(err)
		}
	})
	pointAtRegistry(t, work, reg.CA)
	if strings.TrimSpace(string(cached)) != key {
		start := time.Now()
		imgs, err := st.images()
		if err != nil {
			t.Fatal(err)
		}
		tr, err := reg.Transport()
		if err != nil {
			t.Fatal(err)
		}
		if err := push(ctx, imgs, tr); err != nil {
			t.Fatalf("%v\n%s", err, reg.LogTail())
		}
		if err := os.WriteFile(filepath.Join(cache, "registry.key"), []byte(key+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("stand-in images built and pushed in %v", time.Since(start).Round(time.Millisecond))
	}

	if out := os.Getenv(benchEnv); out != "" {
		benchBoth(t, work, cache, out)
		return
	}
	focus := os.Getenv(focusEnv)
	runtimes := []struct {
		name  string
		start func(*testing.T, string) (string, func())
	}{
		{"containerd", startContainerd},
		{"nscn", startNscn},
	}
	if focus != "" {
		runtimes = runtimes[1:]
	}
	results := map[string]*run{}
	for _, rt := range runtimes {
		dir := filepath.Join(work, rt.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		endpoint, stop := rt.start(t, dir)
		r, err := runCritest(ctx, endpoint, dir, filepath.Join(cache, "critest-"+rt.name+".log"), focus)
		stop()
		if err != nil {
			t.Fatalf("critest against %s: %v", rt.name, err)
		}
		results[rt.name] = r
		t.Logf("critest against %s: %s in %v", rt.name, r.summary(), r.elapsed.Round(time.Second))
	}
	if focus != "" {
		r := results["nscn"]
		names := make([]string, 0, len(r.specs))
		for name := range r.specs {
			if st := r.state(name); st != "-" {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			fmt.Printf("%-8s %s\n", r.state(name), name)
			if r.state(name) != "passed" {
				fmt.Printf("         %s\n", r.specs[name].detail())
			}
		}
		fmt.Printf("nscn, focus %q: %s\n", focus, r.summary())
		return
	}
	table := sideBySide(results["containerd"], results["nscn"])
	resultsFile := filepath.Join(cache, "results.txt")
	if err := os.WriteFile(resultsFile, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("critest v1.37.0 (skipping %s), results in %s:\n  containerd: %s\n  nscn:       %s\n",
		skip, resultsFile, results["containerd"].summary(), results["nscn"].summary())

	for _, rt := range []struct{ name, list, meaning string }{
		{"containerd", "containerd-passes.txt", "the harness is broken (or the host changed): containerd"},
		{"nscn", "nscn-passes.txt", "nscn regressed:"},
	} {
		r := results[rt.name]
		if updating() {
			header := fmt.Sprintf("# The critest v1.37.0 specs %s passes under make cri-test (skipping %s):\n"+
				"# make cri-test fails when one of them stops passing. Rewritten by\n"+
				"# make cri-test CRI_TEST_FLAGS=-update; see Documentation/cri.md, section critest.\n", rt.name, skip)
			if err := os.WriteFile(rt.list, []byte(header+strings.Join(r.passed(), "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := readList(rt.list)
		if err != nil {
			t.Fatal(err)
		}
		lost, gained := ratchet(want, r)
		for _, name := range lost {
			t.Errorf("%s no longer passes %q (%s)", rt.meaning, name, r.specs[name].detail())
		}
		if len(gained) > 0 {
			t.Logf("%s passes %d specs that %s does not list; run make cri-test CRI_TEST_FLAGS=-update to keep them:\n  %s",
				rt.name, len(gained), rt.list, strings.Join(gained, "\n  "))
		}
	}
}

// benchBoth runs critest's lifecycle benchmarks against containerd, then
// nscn, and writes out/summary.json.
func benchBoth(t *testing.T, work, cache, out string) {
	t.Helper()
	sum := BenchSummary{Samples: benchSamples, Runtimes: map[string]map[string]time.Duration{}}
	for _, rt := range []struct {
		name  string
		start func(*testing.T, string) (string, func())
	}{
		{"containerd", startContainerd},
		{"nscn", startNscn},
	} {
		dir := filepath.Join(work, rt.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		endpoint, stop := rt.start(t, dir)
		m, err := runBench(t.Context(), endpoint, dir, filepath.Join(out, rt.name), filepath.Join(cache, "bench-"+rt.name+".log"))
		stop()
		if err != nil {
			t.Fatalf("%s: %v", rt.name, err)
		}
		sum.Runtimes[rt.name] = m
		t.Logf("critest -benchmark against %s: %v", rt.name, m)
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "summary.json"), append(b, '\n'), 0o644); err != nil { //nolint:gosec // G306: read by the bench
		t.Fatal(err)
	}
}

// reexecIsolated runs this test again in a new mount and network namespace,
// where it may point registry names at loopback without touching the host.
func reexecIsolated(t *testing.T) {
	t.Helper()
	// A timeout of its own, below make's: a hang ends with the inner
	// process's goroutines printed.
	args := []string{"-test.run=^TestCritest$", "-test.v", "-test.count=1", "-test.timeout=25m"}
	if updating() {
		args = append(args, "-update")
	}
	// isolate mounts a tmpfs on these in the namespace; it creates the
	// directories on the host when they are missing, and only they stay.
	var created []string
	for _, d := range stateDirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			created = append(created, d)
		}
	}
	defer func() {
		for _, d := range created {
			_ = os.Remove(d) // only if empty: a host's runtime may have made it since
		}
	}()
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...) //nolint:gosec // G204: this test binary, again
	cmd.Env = append(os.Environ(), innerEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// IPC too: critest's host-IPC specs make a shared memory segment
		// that a container in the runtime's IPC namespace must see, and
		// that must not be left in the host's.
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("critest harness in its namespaces: %v", err)
	}
}

// stateDirs are the directories where containerd, its shims and CNI keep
// state whatever their configuration says; isolate gives each a tmpfs.
var stateDirs = []string{"/run/netns", "/var/lib/cni", "/run/containerd"}

// isolate makes the mount namespace private (nothing propagates back to
// the host), brings loopback up and gives the state directories that the
// runtimes and CNI keep outside their configured roots (network namespace
// pins, host-local leases, the shims' sockets) tmpfs of their own.
func isolate(t *testing.T) {
	t.Helper()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
	if out, err := exec.CommandContext(t.Context(), "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	for _, d := range stateDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("tmpfs on %s: %v", d, err)
		}
	}
}

// pointAtRegistry bind-mounts, in this mount namespace only, an /etc/hosts
// that sends registryHosts to 127.0.0.1 and a CA bundle that adds the test
// CA to the host's.
func pointAtRegistry(t *testing.T, work, ca string) {
	t.Helper()
	hosts := filepath.Join(work, "hosts")
	content := "127.0.0.1\tlocalhost " + strings.Join(registryHosts, " ") + "\n::1\tlocalhost\n"
	if err := os.WriteFile(hosts, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	const bundlePath = "/etc/ssl/certs/ca-certificates.crt"
	host, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	testCA, err := os.ReadFile(ca) //nolint:gosec // G304: the registry's CA file
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(work, "ca-certificates.crt")
	if err := os.WriteFile(bundle, append(append(host, '\n'), testCA...), 0o644); err != nil { //nolint:gosec // G306: certificates are public
		t.Fatal(err)
	}
	for src, dst := range map[string]string{hosts: "/etc/hosts", bundle: bundlePath} {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind %s on %s: %v", src, dst, err)
		}
	}
}

// waitSocket waits until something answers on the unix socket.
func waitSocket(ctx context.Context, socket string, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if c, err := net.Dial("unix", socket); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-done:
			return errors.New("exited before it listened")
		case <-ctx.Done():
			return fmt.Errorf("nothing listens on %s: %w", socket, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// daemon starts cmd with its output in logPath and returns a stop
// function: SIGTERM, SIGKILL after 20 s; it reports how it ended.
func daemon(t *testing.T, cmd *exec.Cmd, logPath, socket string) func() {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // G304: a log file under build/
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); _ = logf.Close(); close(done) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("%s ignored SIGTERM for 20 s; killed (log: %s)", cmd.Path, logPath)
		}
		if waitErr != nil {
			t.Logf("%s exited: %v (log: %s)", cmd.Path, waitErr, logPath)
		}
	}
	t.Cleanup(stop)
	if err := waitSocket(t.Context(), socket, done); err != nil {
		b, _ := os.ReadFile(logPath) //nolint:gosec // G304: our log
		t.Fatalf("%s: %v:\n%s", cmd.Path, err, tail(b))
	}
	return stop
}

func tail(b []byte) string {
	if len(b) > 6000 {
		return "…" + string(b[len(b)-6000:])
	}
	return string(b)
}

// startContainerd starts Debian's containerd with its CRI plugin and runc,
// every directory under dir: root, state, socket, the runc root, CNI
// configuration and leases (bridge, host-local, portmap from the build's
// CNI plugins). The host's root lacks CAP_SYS_RESOURCE, hence
// restrict_oom_score_adj.
func startContainerd(t *testing.T, dir string) (string, func()) {
	t.Helper()
	bin := testutil.RequiresCommand(t, "containerd")
	cniDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0", "name": "critest",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni-critest", "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type": "host-local", "dataDir": filepath.Join(dir, "ipam"),
					"ranges": []any{[]any{map[string]any{"subnet": "10.88.0.0/16"}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-critest.conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "containerd.sock")
	cri := `plugins."io.containerd.grpc.v1.cri"`
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[%s]
  sandbox_image = "registry.k8s.io/pause:3.9"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[%s.cni]
  bin_dir = %q
  conf_dir = %q

[%s.containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

[%s.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[%s.containerd.runtimes.runc.options]
  Root = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, filepath.Join(dir, "opt"),
		cri, cri, mustEnv(t, "NSCN_CNI_PLUGIN_DIR"), cniDir, cri, cri, cri, filepath.Join(dir, "runc"))
	conf := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "--config", conf) //nolint:gosec // G204: Debian's containerd on our config
	stop := daemon(t, cmd, filepath.Join(mustEnv(t, "NSCN_CRI_CACHE"), "containerd.log"), socket)
	return "unix://" + socket, func() {
		stop()
		killShims(t, socket)
	}
}

// killShims ends the runc shims that outlived containerd (they are
// started for it, detached): each names containerd's socket in its argv.
func killShims(t *testing.T, socket string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p) //nolint:gosec // G304: /proc
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) || !bytes.Contains(b, []byte(socket)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
			t.Logf("killing containerd shim %d left after containerd stopped", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// startNscn starts nscn cri with its own data and configuration
// directories under dir; registries.d trusts the tags of the registries
// critest pulls from (the stand-ins), as an operator would.
func startNscn(t *testing.T, dir string) (string, func()) {
	t.Helper()
	data, local, system, home := filepath.Join(dir, "data"), filepath.Join(dir, "etc"), filepath.Join(dir, "lib"), filepath.Join(dir, "home")
	for _, d := range []string{filepath.Join(local, "registries.d"), system, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	trust, err := json.Marshal(map[string]any{
		"nscnKind": "registryTrust", "nscnVersion": "v1", "repositories": registryHosts, "acceptTags": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "registries.d", "critest.json"), trust, 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "nscn.sock")
	cmd := exec.CommandContext(t.Context(), mustEnv(t, "NSCN_BIN"), "--dir", data, "--local-config", local, "--system-config", system, //nolint:gosec // G204: the nscn under test
		"cri", "--listen=unix://"+socket)
	cmd.Env = append(os.Environ(), "HOME="+home)
	stopServer := daemon(t, cmd, filepath.Join(mustEnv(t, "NSCN_CRI_CACHE"), "nscn-cri.log"), socket)
	// The sandboxes outlive the server (they are pods, the server's
	// state): those the failing specs did not remove are killed and
	// collected here, or they would run on after the test.
	stop := func() {
		stopServer()
		nscn := func(args ...string) {
			all := append([]string{"--dir", data, "--local-config", local, "--system-config", system}, args...)
			if out, err := exec.Command(mustEnv(t, "NSCN_BIN"), all...).CombinedOutput(); err != nil { //nolint:gosec,noctx // G204: the nscn under test; cleanup after the test's context
				t.Logf("nscn %v: %v\n%s", args, err, out)
			}
		}
		running, _ := filepath.Glob(filepath.Join(data, "pods", "run", "*"))
		for _, p := range running {
			nscn("stop", "--force", filepath.Base(p))
		}
		nscn("gc", "--grace-period=0s")
	}
	return "unix://" + socket, stop
}

// runCritest runs critest against endpoint in new PID, IPC and UTS
// namespaces (its host-IPC specs leave shared memory segments behind),
// with its output in logPath, and reads its JSON report.
func runCritest(ctx context.Context, endpoint, dir, logPath, focus string) (*run, error) {
	report := filepath.Join(dir, "report.json")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // G304: a log under build/
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	args := []string{
		"-runtime-endpoint=" + endpoint, "-image-endpoint=" + endpoint,
		"-ginkgo.skip=" + skip, "-ginkgo.json-report=" + report, "-ginkgo.no-color", "-ginkgo.v", "-test.timeout=15m",
	}
	if focus != "" {
		args = append(args, "-ginkgo.focus="+focus)
	}
	cmd := exec.CommandContext(ctx, os.Getenv("NSCN_CRITEST"), args...) //nolint:gosec // G204: critest built by make
	// Its pods' log directories (podLogTest*) go to a TMPDIR of its own:
	// it leaves those of pods it could not remove, and the test's
	// temporary directory goes at the end.
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	start := time.Now()
	runErr := cmd.Run()           // fails when a spec fails: the report says which
	b, err := os.ReadFile(report) //nolint:gosec // G304: critest's report
	if err != nil {
		return nil, fmt.Errorf("no report (critest: %w; log %s): %w", runErr, logPath, err)
	}
	r, err := parseReport(b)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", report, err)
	}
	r.elapsed = time.Since(start)
	return r, nil
}
