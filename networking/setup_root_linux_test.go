package networking

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
	"github.com/nosecone/nscn/networking/cni"
	"github.com/nosecone/nscn/networking/netns"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// The root tests talk only between the host and namespaces they create,
// on the built-in subnets and 10.254.0.0/16; every one restores the host
// (namespaces, links, iptables rules, IPAM leases, ip_forward) in
// t.Cleanup, and checks that Teardown alone already did.

// hostState is what a pod's network may change on the host.
type hostState struct {
	netns    []string // /run/netns entries
	mounts   []string // nsfs mount points
	links    []string // interface names
	iptables []string // nat and filter rules, without counters
}

func snapshot(t *testing.T) hostState {
	t.Helper()
	var s hostState
	entries, _ := os.ReadDir(DefaultNetNSDir)
	for _, e := range entries {
		s.netns = append(s.netns, e.Name())
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 8 && strings.Contains(line, " - nsfs ") {
			s.mounts = append(s.mounts, f[4])
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		s.links = append(s.links, i.Name)
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		if err != nil {
			t.Fatalf("iptables-save: %v", err)
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			if line == "" || strings.HasPrefix(line, "#") || line == "COMMIT" {
				continue
			}
			if strings.HasPrefix(line, ":") { // ":CHAIN POLICY [p:b]"
				line = strings.Join(strings.Fields(line)[:2], " ")
			}
			s.iptables = append(s.iptables, table+" "+line)
		}
	}
	return s
}

// added returns what is in after but not in before, ignoring the
// shared chains the portmap plugin creates once and keeps.
func added(before, after []string) []string {
	var out []string
	for _, a := range after {
		if !slices.Contains(before, a) && !strings.Contains(a, "CNI-HOSTPORT-") {
			out = append(out, a)
		}
	}
	return out
}

// requireRestored fails unless the host has nothing that before lacked.
// Links are polled: the kernel destroys a namespace's veths asynchronously.
func requireRestored(t *testing.T, before hostState) {
	t.Helper()
	var diff []string
	for range 50 {
		after := snapshot(t)
		diff = nil
		diff = append(diff, prefixed("netns", added(before.netns, after.netns))...)
		diff = append(diff, prefixed("mount", added(before.mounts, after.mounts))...)
		diff = append(diff, prefixed("link", added(before.links, after.links))...)
		diff = append(diff, prefixed("iptables", added(before.iptables, after.iptables))...)
		if len(diff) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the host is not as before the pod:\n%s", strings.Join(diff, "\n"))
}

func prefixed(p string, s []string) []string {
	for i := range s {
		s[i] = p + ": " + s[i]
	}
	return s
}

// hostGuard checks the host's prerequisites, snapshots it, and restores
// what the tests may leave: the portmap plugin's shared chains (when no
// pod uses them) and ip_forward.
func hostGuard(t *testing.T) hostState {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresCommand(t, "iptables")
	testutil.RequiresCommand(t, "iptables-save")
	before := snapshot(t)
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	t.Cleanup(func() {
		restoreIptables(t, before)
		if len(fwd) > 0 {
			_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", fwd, 0o644) //nolint:gosec // G703: restores the host setting the test changed
		}
	})
	return before
}

// restoreIptables removes the CNI rules and chains that appeared since
// before: the portmap plugin's shared chains, and whatever a failing test
// left behind.
func restoreIptables(t *testing.T, before hostState) {
	var newChains []string
	after := snapshot(t)
	for _, line := range after.iptables {
		if slices.Contains(before.iptables, line) || !strings.Contains(line, "CNI-") {
			continue
		}
		table, rule, _ := strings.Cut(line, " ")
		if name, ok := strings.CutPrefix(rule, ":"); ok {
			newChains = append(newChains, table+" "+strings.Fields(name)[0])
			continue
		}
		f, ok := splitRule(rule)
		if !ok || len(f) < 2 || f[0] != "-A" {
			continue
		}
		if err := exec.Command("iptables", append([]string{"-w", "-t", table, "-D"}, f[1:]...)...).Run(); err != nil { //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
			t.Logf("restore iptables: delete %s: %v", line, err)
		}
	}
	for _, op := range []string{"-F", "-X"} {
		for _, c := range newChains {
			table, chain, _ := strings.Cut(c, " ")
			_ = exec.Command("iptables", "-w", "-t", table, op, chain).Run() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		}
	}
}

type testPod struct {
	cfg Config
	res *Result
}

// newConfig returns a Config for a fresh pod whose IPAM state and port
// claims live in test directories.
func newConfig(t *testing.T, ipamDir string, nets string) Config {
	t.Helper()
	n, err := ParseNets(nets)
	if err != nil {
		t.Fatal(err)
	}
	pod := filepath.Join(t.TempDir(), "pods", "run", uuid.NewString())
	if err := os.MkdirAll(pod, 0o750); err != nil {
		t.Fatal(err)
	}
	return Config{
		PodDir:       pod,
		UUID:         filepath.Base(pod),
		Nets:         n,
		PluginDirs:   []string{plugins(t)},
		IPAMDataDir:  ipamDir,
		PortClaimDir: filepath.Join(filepath.Dir(ipamDir), "ports"),
	}
}

// setup runs Setup and registers a Teardown (idempotent) as cleanup.
func setup(t *testing.T, c Config) *testPod {
	t.Helper()
	t.Cleanup(func() {
		if err := Teardown(context.Background(), c.PodDir); err != nil {
			t.Errorf("cleanup teardown: %v", err)
		}
	})
	res, err := Setup(context.Background(), c)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return &testPod{cfg: c, res: res}
}

func (p *testPod) ip(t *testing.T, i int) net.IP {
	t.Helper()
	if len(p.res.Networks) <= i || len(p.res.Networks[i].IPs) == 0 {
		t.Fatalf("pod has no address on network %d: %+v", i, p.res.Networks)
	}
	return p.res.Networks[i].IPs[0].IP
}

// listenIn starts a TCP echo-greeting server inside the namespace.
func listenIn(t *testing.T, nsPath, addr, greeting string) {
	t.Helper()
	var l net.Listener
	if err := netns.Do(context.Background(), nsPath, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go serve(l, greeting)
}

func serve(l net.Listener, greeting string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, greeting+"\n")
		_ = c.Close()
	}
}

// dial connects to addr, from the namespace nsPath or from the host when
// it is empty, and returns the greeting line.
func dial(t *testing.T, nsPath, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	d := func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	}
	var err error
	if nsPath == "" {
		err = d()
	} else {
		err = netns.Do(context.Background(), nsPath, d)
	}
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func mustDial(t *testing.T, nsPath, addr, want string) {
	t.Helper()
	got, err := dial(t, nsPath, addr)
	if err != nil || got != want {
		t.Fatalf("dial %s from %q: %q, %v; want %q", addr, nsPath, got, err, want)
	}
}

func leases(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && net.ParseIP(d.Name()) != nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func hostPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDefaultNetwork(t *testing.T) {
	before := hostGuard(t)
	ipam := filepath.Join(t.TempDir(), "ipam")
	p := setup(t, newConfig(t, ipam, "default"))

	// The pod directory records the namespace and the network.
	data, err := os.ReadFile(filepath.Join(p.cfg.PodDir, stage1abi.NetNSFile))
	if err != nil || strings.TrimSpace(string(data)) != p.res.NetNS {
		t.Fatalf("netns file = %q, %v; want %q", data, err, p.res.NetNS)
	}
	recs, err := cni.ReadRecords(p.cfg.PodDir)
	if err != nil || len(recs) != 1 || len(recs[0].Result) == 0 {
		t.Fatalf("records = %+v, %v", recs, err)
	}

	// eth0 has an address in 172.16.28.0/24.
	_, subnet, _ := net.ParseCIDR(cni.DefaultSubnet)
	podIP := p.ip(t, 0)
	if !subnet.Contains(podIP) || p.res.Networks[0].IfName != "eth0" {
		t.Fatalf("pod address %v on %s, want eth0 in %v", podIP, p.res.Networks[0].IfName, subnet)
	}
	var names []string
	if err := netns.Do(context.Background(), p.res.NetNS, func() error {
		ifaces, err := net.Interfaces()
		for _, i := range ifaces {
			names = append(names, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"eth0", "lo"}) {
		t.Fatalf("interfaces in the pod: %v, want eth0 and lo", names)
	}

	// Host to pod.
	listenIn(t, p.res.NetNS, ":8080", "pod")
	mustDial(t, "", net.JoinHostPort(podIP.String(), "8080"), "pod")

	// Pod to host: the host's end of the veth carries the gateway address.
	gw := p.res.Networks[0].Result.IPs[0].Gateway
	hl, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hl.Close() })
	go serve(hl, "host")
	mustDial(t, p.res.NetNS, hl.Addr().String(), "host")

	if len(leases(t, ipam)) != 1 {
		t.Fatalf("leases = %v, want one", leases(t, ipam))
	}
	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
	requireRestored(t, before)
	if l := leases(t, ipam); len(l) != 0 {
		t.Fatalf("leases left after Teardown: %v", l)
	}
	for _, f := range []string{stage1abi.NetNSFile, stage1abi.NetInfoDir} {
		if _, err := os.Lstat(filepath.Join(p.cfg.PodDir, f)); err == nil {
			t.Errorf("%s left in the pod directory", f)
		}
	}
}

func TestNoneHasOnlyLoopback(t *testing.T) {
	before := hostGuard(t)
	p := setup(t, newConfig(t, filepath.Join(t.TempDir(), "ipam"), "none"))
	var ifaces []net.Interface
	if err := netns.Do(context.Background(), p.res.NetNS, func() (err error) {
		ifaces, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces = %+v, want lo only, up", ifaces)
	}
	if len(p.res.Networks) != 0 {
		t.Fatalf("networks = %+v, want none", p.res.Networks)
	}
	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
}

func TestHostDoesNothing(t *testing.T) {
	before := hostGuard(t)
	p := setup(t, newConfig(t, filepath.Join(t.TempDir(), "ipam"), "host"))
	if p.res.NetNS != "" {
		t.Fatalf("host networking got a namespace %q", p.res.NetNS)
	}
	requireRestored(t, before)
}

func TestTwoPodsOnDefaultReachEachOther(t *testing.T) {
	before := hostGuard(t)
	ipam := filepath.Join(t.TempDir(), "ipam")
	a := setup(t, newConfig(t, ipam, "default"))
	b := setup(t, newConfig(t, ipam, "default"))
	if a.ip(t, 0).Equal(b.ip(t, 0)) {
		t.Fatalf("both pods got %v", a.ip(t, 0))
	}
	listenIn(t, a.res.NetNS, ":7000", "a")
	listenIn(t, b.res.NetNS, ":7000", "b")
	mustDial(t, b.res.NetNS, net.JoinHostPort(a.ip(t, 0).String(), "7000"), "a")
	mustDial(t, a.res.NetNS, net.JoinHostPort(b.ip(t, 0).String(), "7000"), "b")
	for _, p := range []*testPod{a, b} {
		if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
			t.Fatal(err)
		}
	}
	requireRestored(t, before)
	if l := leases(t, ipam); len(l) != 0 {
		t.Fatalf("leases left: %v", l)
	}
}

func TestDefaultRestricted(t *testing.T) {
	before := hostGuard(t)
	p := setup(t, newConfig(t, filepath.Join(t.TempDir(), "ipam"), "default-restricted"))
	_, subnet, _ := net.ParseCIDR(cni.DefaultRestrictedSubnet)
	if !subnet.Contains(p.ip(t, 0)) {
		t.Fatalf("pod address %v not in %v", p.ip(t, 0), subnet)
	}
	listenIn(t, p.res.NetNS, ":8080", "pod")
	mustDial(t, "", net.JoinHostPort(p.ip(t, 0).String(), "8080"), "pod")
	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
}

const testBridge = "nscntbr0"

func TestCustomBridgeConflist(t *testing.T) {
	before := hostGuard(t)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", testBridge).Run() })
	ipam := filepath.Join(t.TempDir(), "ipam")
	local := t.TempDir()
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "testbr",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "subnet": "10.254.77.0/24", "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}`, testBridge, ipam)
	if err := os.MkdirAll(filepath.Join(local, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "net.d", "50-testbr.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newConfig(t, ipam, "testbr,default")
	c.LocalConfig = local
	c.IPAMDataDir = filepath.Join(t.TempDir(), "ipam-default")
	p := setup(t, c)
	_, subnet, _ := net.ParseCIDR("10.254.77.0/24")
	if !subnet.Contains(p.ip(t, 0)) || p.res.Networks[1].IfName != "eth1" {
		t.Fatalf("networks = %+v; want eth0 in %v and eth1", p.res.Networks, subnet)
	}
	listenIn(t, p.res.NetNS, ":8080", "bridged")
	mustDial(t, "", net.JoinHostPort(p.ip(t, 0).String(), "8080"), "bridged")
	mustDial(t, "", net.JoinHostPort(p.ip(t, 1).String(), "8080"), "bridged")
	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatal(err)
	}
	// The bridge itself stays, as with every CNI runtime; the cleanup
	// removes it.
	_ = exec.Command("ip", "link", "del", testBridge).Run()
	requireRestored(t, before)
	if l := leases(t, ipam); len(l) != 0 {
		t.Fatalf("leases left: %v", l)
	}
}

func TestPortForward(t *testing.T) {
	before := hostGuard(t)
	ipam := filepath.Join(t.TempDir(), "ipam")
	hp := hostPort(t)
	c := newConfig(t, ipam, "default")
	c.Ports = []portfwd.Mapping{{Name: "http", HostPort: hp, PodPort: 8080, Protocol: "tcp"}}
	p := setup(t, c)
	listenIn(t, p.res.NetNS, ":8080", "forwarded")
	mustDial(t, "", fmt.Sprintf("127.0.0.1:%d", hp), "forwarded")

	// A second pod asking for the same host port is refused before
	// anything is set up.
	c2 := newConfig(t, ipam, "default")
	c2.Ports = c.Ports
	_, err := Setup(context.Background(), c2)
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second pod on the same host port: %v, want already exists", err)
	}
	if _, err := os.Lstat(filepath.Join(c2.PodDir, stage1abi.NetNSFile)); err == nil {
		t.Fatal("refused pod has a netns file")
	}
	if _, err := os.Lstat(filepath.Join(DefaultNetNSDir, NetNSPrefix+c2.UUID)); err == nil {
		t.Fatal("refused pod has a namespace")
	}

	if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
	if _, err := dial(t, "", fmt.Sprintf("127.0.0.1:%d", hp)); err == nil {
		t.Fatal("host port still forwarded after Teardown")
	}
	if entries, _ := os.ReadDir(c.PortClaimDir); len(entries) != 0 {
		t.Fatalf("port claims left: %v", entries)
	}
	// Now the port is free for the second pod.
	setup(t, c2)
}

func TestTeardownAfterNetNSVanished(t *testing.T) {
	tests := []struct {
		name       string
		removeFile bool // a reboot: /run is empty; otherwise only the mount is gone
		ports      bool
	}{
		{name: "mount lost", ports: true},
		{name: "reboot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hostGuard(t)
			ipam := filepath.Join(t.TempDir(), "ipam")
			c := newConfig(t, ipam, "default")
			if tt.ports {
				c.Ports = []portfwd.Mapping{{Name: "http", HostPort: hostPort(t), PodPort: 80, Protocol: "tcp"}}
			}
			p := setup(t, c)
			if err := unix.Unmount(p.res.NetNS, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			if tt.removeFile {
				if err := os.Remove(p.res.NetNS); err != nil {
					t.Fatal(err)
				}
			}
			if err := Teardown(context.Background(), p.cfg.PodDir); err != nil {
				t.Fatal(err)
			}
			requireRestored(t, before)
			if l := leases(t, ipam); len(l) != 0 {
				t.Fatalf("leases left: %v", l)
			}
		})
	}
}

// A pod killed between ADD and recording the result: the record has no
// result, and Teardown still undoes everything.
func TestTeardownAfterKillDuringSetup(t *testing.T) {
	before := hostGuard(t)
	ipam := filepath.Join(t.TempDir(), "ipam")
	c := newConfig(t, ipam, "default")
	c.Ports = []portfwd.Mapping{{Name: "http", HostPort: hostPort(t), PodPort: 80, Protocol: "tcp"}}
	// The plugins ship in the stage1 rootfs, inside the pod directory.
	c.PluginDirs = []string{"stage1/rootfs/cni"}
	copyPlugins(t, filepath.Join(c.PodDir, c.PluginDirs[0]))
	p := setup(t, c)
	recs, err := cni.ReadRecords(p.cfg.PodDir)
	if err != nil || len(recs) != 1 {
		t.Fatalf("records: %v, %v", recs, err)
	}
	if !slices.Equal(recs[0].PluginDirs, c.PluginDirs) {
		t.Fatalf("recorded plugin dirs %v, want %v (relative to the pod)", recs[0].PluginDirs, c.PluginDirs)
	}
	recs[0].Result = nil
	if err := cni.WriteRecord(p.cfg.PodDir, recs[0]); err != nil {
		t.Fatal(err)
	}
	// The pod directory moves to exited-garbage before gc.
	garbage := filepath.Join(filepath.Dir(filepath.Dir(p.cfg.PodDir)), "exited-garbage", p.cfg.UUID)
	if err := os.MkdirAll(filepath.Dir(garbage), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p.cfg.PodDir, garbage); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Teardown(context.Background(), garbage) })
	if err := Teardown(context.Background(), garbage); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
	if l := leases(t, ipam); len(l) != 0 {
		t.Fatalf("leases left: %v", l)
	}
}

// fillTinyNetwork writes, in a local configuration directory, the
// network "tiny", whose subnet has one address, and sets up a pod that
// takes it: the next pod on "tiny" (with the same LocalConfig) finds no
// address left. It returns that pod's configuration.
func fillTinyNetwork(t *testing.T) Config {
	t.Helper()
	ipam := filepath.Join(t.TempDir(), "ipam")
	local := t.TempDir()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"tiny","plugins":[{"type":"ptp",
  "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.254.9.0/30","rangeStart":"10.254.9.2","rangeEnd":"10.254.9.2"}]]}}]}`, ipam)
	if err := os.MkdirAll(filepath.Join(local, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(local, "net.d", "tiny.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newConfig(t, ipam, "tiny")
	c.LocalConfig = local
	setup(t, c)
	return c
}

func TestSubnetExhaustedUndoesSetup(t *testing.T) {
	before := hostGuard(t)
	c := fillTinyNetwork(t)

	// default (eth0) succeeds, tiny (eth1) has no address left.
	c2 := newConfig(t, filepath.Join(t.TempDir(), "ipam-default"), "default,tiny")
	c2.LocalConfig = c.LocalConfig
	_, err := Setup(context.Background(), c2)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "subnet exhausted") {
		t.Fatalf("Setup on a full subnet: %v, want unavailable, subnet exhausted", err)
	}
	for _, f := range []string{stage1abi.NetNSFile, stage1abi.NetInfoDir} {
		if _, err := os.Lstat(filepath.Join(c2.PodDir, f)); err == nil {
			t.Errorf("%s left behind by a failed Setup", f)
		}
	}
	if l := leases(t, c2.IPAMDataDir); len(l) != 0 {
		t.Fatalf("failed Setup kept leases: %v", l)
	}
	if _, err := os.Lstat(filepath.Join(DefaultNetNSDir, NetNSPrefix+c2.UUID)); err == nil {
		t.Fatal("failed Setup kept its namespace")
	}
	if err := Teardown(context.Background(), c.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
}

func TestSetupTwiceRefused(t *testing.T) {
	hostGuard(t)
	c := newConfig(t, filepath.Join(t.TempDir(), "ipam"), "none")
	setup(t, c)
	if _, err := Setup(context.Background(), c); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second Setup: %v, want failed precondition", err)
	}
}

// copyPlugins links (or copies) the test's plugins into dir.
func copyPlugins(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(plugins(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, dst := filepath.Join(plugins(t), e.Name()), filepath.Join(dir, e.Name())
		if os.Link(src, dst) == nil {
			continue
		}
		data, err := os.ReadFile(src) //nolint:gosec // G304: a file the test made
		if err == nil {
			err = os.WriteFile(dst, data, 0o755) //nolint:gosec // G306: a copy of an executable CNI plugin
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrepareThenAdd is the start of a pod beside its network's: the
// namespace exists with only lo after Prepare, a process in it sees the
// interface Add then gives it, and the result is Setup's.
func TestPrepareThenAdd(t *testing.T) {
	before := hostGuard(t)
	c := newConfig(t, filepath.Join(t.TempDir(), "ipam"), "default")
	p, err := Prepare(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Teardown(context.Background(), c.PodDir) })
	ifaces := func() []string {
		t.Helper()
		var names []string
		if err := netns.Do(context.Background(), p.NetNS(), func() error {
			l, err := net.Interfaces()
			for _, i := range l {
				names = append(names, i.Name)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}
	if got := ifaces(); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("after Prepare the namespace has %v, want only lo", got)
	}
	res, err := p.Add(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.NetNS != p.NetNS() || len(res.Networks) != 1 || len(res.Networks[0].IPs) == 0 {
		t.Fatalf("Add: %+v", res)
	}
	if got := ifaces(); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("after Add the namespace has %v, want eth0 and lo", got)
	}
	if err := Teardown(context.Background(), c.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
}

// TestPrepareUndo is a pod that could not start: Undo leaves nothing.
func TestPrepareUndo(t *testing.T) {
	before := hostGuard(t)
	c := newConfig(t, filepath.Join(t.TempDir(), "ipam"), "default")
	c.Ports = []portfwd.Mapping{{Name: "http", Protocol: "tcp", HostPort: hostPort(t), PodPort: 80}}
	p, err := Prepare(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Undo(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{stage1abi.NetNSFile, stage1abi.NetInfoDir} {
		if _, err := os.Lstat(filepath.Join(c.PodDir, f)); err == nil {
			t.Errorf("%s left behind by Undo", f)
		}
	}
	if claims, _ := os.ReadDir(c.PortClaimDir); len(claims) != 0 {
		t.Errorf("port claims left behind by Undo: %v", claims)
	}
	requireRestored(t, before)
}

// TestAddFailsWhileNamespaceInUse: Add fails (no address left) while a
// process holds the namespace, as the pod's systemd-nspawn would; Add
// undoes everything, the namespace pin included.
func TestAddFailsWhileNamespaceInUse(t *testing.T) {
	before := hostGuard(t)
	c := fillTinyNetwork(t)

	c2 := newConfig(t, filepath.Join(t.TempDir(), "ipam-default"), "default,tiny")
	c2.LocalConfig = c.LocalConfig
	p, err := Prepare(context.Background(), c2)
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("nsenter", "--net="+p.NetNS(), "sleep", "60") //nolint:gosec,noctx // G204: the test's own namespace; killed in cleanup
	if err := holder.Start(); err != nil {
		_ = p.Undo(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	if _, err := p.Add(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Add on a full subnet: %v, want unavailable", err)
	}
	for _, f := range []string{stage1abi.NetNSFile, stage1abi.NetInfoDir} {
		if _, err := os.Lstat(filepath.Join(c2.PodDir, f)); err == nil {
			t.Errorf("%s left behind by a failed Add", f)
		}
	}
	if l := leases(t, c2.IPAMDataDir); len(l) != 0 {
		t.Fatalf("failed Add kept leases: %v", l)
	}
	if _, err := os.Lstat(p.NetNS()); err == nil {
		t.Fatal("failed Add kept its namespace pin")
	}
	if _, err := os.Lstat(filepath.Join(c2.IPAMDataDir, "default")); err == nil {
		t.Error("failed Add kept host-local's bookkeeping of the default network, which no pod uses")
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	if err := Teardown(context.Background(), c.PodDir); err != nil {
		t.Fatal(err)
	}
	requireRestored(t, before)
}
