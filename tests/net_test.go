//go:build functional && nspawn

package tests

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests send traffic only between the host and the pods they start
// (172.16.28.0/24 of the default network, 10.251.77.0/24 and
// 10.251.78.0/30 of their own test networks) and to 127.0.0.1.

// newNetEnv is newEnv whose pods are garbage collected however the test
// ends: a pod directory removed without gc would leak its network.
func newNetEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	t.Cleanup(func() { e.run("gc", "--grace-period=0s") })
	return e
}

// netGC runs nscn gc and checks that the env's pods, their mounts and
// their processes are gone. (assertPodsGone also looks for any pod's
// systemd on the host, which other users of the host may be running.)
func netGC(t *testing.T, e *env) {
	t.Helper()
	r := e.ok("gc", "--grace-period=0s")
	assertNoPods(t, e)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), e.dir) {
		t.Fatalf("mounts left under %s after gc:\n%s\n(gc: %s)", e.dir, mi, r.stderr)
	}
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, e.dir) {
			t.Fatalf("process left after gc: %s", l)
		}
	}
}

// netState is what a pod's network may leave on the host.
type netState struct {
	netns, links, iptables, leases []string
}

func netSnapshot(t *testing.T) netState {
	t.Helper()
	var s netState
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			s.netns = append(s.netns, f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables-save", "-t", table).Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		if err != nil {
			t.Fatalf("iptables-save: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, "#") || l == "COMMIT" {
				continue
			}
			if strings.HasPrefix(l, ":") { // ":CHAIN POLICY [packets:bytes]"
				l = strings.Join(strings.Fields(l)[:2], " ")
			}
			s.iptables = append(s.iptables, table+" "+l)
		}
	}
	// host-local's directory, every file: leases and its bookkeeping,
	// which nscn removes with the network's last pod.
	_ = filepath.WalkDir("/var/lib/cni/networks", func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != "/var/lib/cni/networks" {
			s.leases = append(s.leases, p)
		}
		return nil
	})
	return s
}

// requireNetRestored fails unless nothing was added to the host since
// before: no namespace, link, iptables rule or chain (the portmap plugin's
// shared CNI-HOSTPORT-* chains included) and no file in host-local's
// directory. Interfaces are polled: the kernel destroys a namespace's
// veths asynchronously.
func requireNetRestored(t *testing.T, before netState) {
	t.Helper()
	var diff []string
	for range 50 {
		after := netSnapshot(t)
		diff = nil
		for _, pair := range [][2][]string{{before.netns, after.netns}, {before.links, after.links}, {before.iptables, after.iptables}, {before.leases, after.leases}} {
			for _, a := range pair[1] {
				if !slices.Contains(pair[0], a) {
					diff = append(diff, a)
				}
			}
		}
		if len(diff) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("left on the host after gc:\n%s", strings.Join(diff, "\n"))
}

// startNetPod starts a busybox pod on the stage1-nspawn image with the
// given pod flags, running script, and waits until it printed "ready".
func startNetPod(t *testing.T, e *env, podFlags []string, script string) *bgPod {
	t.Helper()
	args := append([]string{"--insecure-options=image", "run", "--stage1-path=" + nspawnACI(t)}, podFlags...)
	args = append(args, busybox(t), "--exec=/bin/sh", "--", "-c", script)
	return startPod(t, e, 30*time.Second, []string{"ready"}, args...)
}

// ip returns the pod's address on a network, from its net-info record.
func (p *bgPod) ip(t *testing.T, e *env, network string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "pods", "run", p.uuid, "net-info", network+".json")) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatalf("pod %s has no record of network %s: %v", p.uuid, network, err)
	}
	var rec struct {
		Result struct {
			IPs []struct {
				Address string `json:"address"`
			} `json:"ips"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Result.IPs) == 0 {
		t.Fatalf("record of network %s: %v %s", network, err, b)
	}
	ip, _, err := net.ParseCIDR(rec.Result.IPs[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return ip.String()
}

// httpGet fetches url from the host, retrying while the server starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for range 50 {
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			lastErr = err
		} else {
			lastErr = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

const httpdScript = `mkdir -p /www && echo "hello from $AC_APP_NAME" > /www/index.html && httpd -p 80 -h /www && echo ready && exec sleep 600`

func TestNspawnNetDefaultServesHTTP(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)

	web := startNetPod(t, e, []string{"--net=default", "--port=http:127.0.0.1:18080"}, httpdScript)
	ip := web.ip(t, e, "default")
	if !strings.HasPrefix(ip, "172.16.28.") {
		t.Fatalf("pod address %s is not on the default network", ip)
	}
	if got := httpGet(t, "http://"+ip+"/"); got != "hello from busybox\n" {
		t.Errorf("GET through the pod IP: %q", got)
	}
	if got := httpGet(t, "http://127.0.0.1:18080/"); got != "hello from busybox\n" {
		t.Errorf("GET through the forwarded port: %q", got)
	}

	{ // a second pod reaches the first
		r := e.ok("--insecure-options=image", "run", "--net=default", "--stage1-path="+nspawnACI(t), busybox(t),
			"--exec=/bin/sh", "--", "-c", "wget -q -O - http://"+ip+"/")
		if r.stdout != "hello from busybox\n" {
			t.Errorf("the second pod got %q", r.stdout)
		}
	}
	{ // the same host port twice
		e.fails("host port tcp/18080 is already forwarded", "--insecure-options=image", "run", "--net=default",
			"--port=http:18080", "--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/true")
	}

	web.stop(t, e)
	netGC(t, e)
	requireNetRestored(t, before)
}

func TestNspawnNetNoneAndHost(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	ls := "ls /sys/class/net | sort | tr '\\n' ' '"
	r := e.ok("--insecure-options=image", "run", "--net=none", "--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/sh", "--", "-c", ls)
	if strings.TrimSpace(r.stdout) != "lo" {
		t.Errorf("--net=none: interfaces %q, want only lo", r.stdout)
	}
	r = e.ok("--insecure-options=image", "run", "--net=host", "--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/sh", "--", "-c", ls)
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		if !slices.Contains(strings.Fields(r.stdout), i.Name) {
			t.Errorf("--net=host: the pod does not see the host's %s (it sees %q)", i.Name, r.stdout)
		}
	}
	netGC(t, e)
	requireNetRestored(t, before)
}

// writeNet puts a network definition into the env's --local-config net.d.
// host-local keeps a bookkeeping directory per network name; the test's
// networks' are removed afterwards.
func writeNet(t *testing.T, e *env, file, content string) {
	t.Helper()
	var n struct {
		Name string `json:"name"`
	}
	if json.Unmarshal([]byte(content), &n) == nil && n.Name != "" {
		ipam := filepath.Join("/var/lib/cni/networks", n.Name)
		if _, err := os.Stat(ipam); errors.Is(err, fs.ErrNotExist) {
			t.Cleanup(func() { _ = os.RemoveAll(ipam) })
		}
	}
	d := filepath.Join(e.local, "net.d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNspawnNetCustomBridge(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "nscntest0").Run() })
	writeNet(t, e, "10-nscntest.conflist", `{
  "cniVersion": "1.0.0",
  "name": "nscntest",
  "plugins": [
    {"type": "bridge", "bridge": "nscntest0", "isGateway": true,
     "ipam": {"type": "host-local", "subnet": "10.251.77.0/24"}}
  ]
}`)
	web := startNetPod(t, e, []string{"--net=nscntest"}, httpdScript)
	ip := web.ip(t, e, "nscntest")
	if !strings.HasPrefix(ip, "10.251.77.") {
		t.Fatalf("pod address %s is not on the test bridge", ip)
	}
	if got := httpGet(t, "http://"+ip+"/"); got != "hello from busybox\n" {
		t.Errorf("GET through the bridge: %q", got)
	}
	web.stop(t, e)
	netGC(t, e)
	// The bridge itself stays, as with every CNI runtime; the test made
	// it and removes it.
	if err := exec.Command("ip", "link", "del", "nscntest0").Run(); err != nil {
		t.Errorf("the bridge nscntest0 was not there: %v", err)
	}
	requireNetRestored(t, before)
}

func TestNspawnNetDNSAndHosts(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	show := "cat /etc/resolv.conf; echo ---; cat /etc/hosts"
	r := e.ok("--insecure-options=image", "run", "--net=default", "--dns=198.51.100.53", "--dns-search=test.example",
		"--dns-opt=ndots:2", "--dns-domain=pod.example", "--hosts-entry=198.51.100.7=db,db.test.example",
		"--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/sh", "--", "-c", show)
	for _, want := range []string{"nameserver 198.51.100.53\n", "search test.example\n", "options ndots:2\n", "domain pod.example\n", "198.51.100.7\tdb db.test.example\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the app's files lack %q:\n%s", want, r.stdout)
		}
	}
	// Without flags, the image (which has no /etc/hosts) gets one with the
	// pod's hostname on its address.
	r = e.ok("--insecure-options=image", "run", "--net=default", "--hostname=web1",
		"--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/sh", "--", "-c", "cat /etc/hosts; hostname")
	if !strings.Contains(r.stdout, "web1\n") || !strings.Contains(r.stdout, "172.16.28.") || !strings.Contains(r.stdout, "localhost") {
		t.Errorf("fallback /etc/hosts:\n%s", r.stdout)
	}
	e.fails("--dns", "--insecure-options=image", "run", "--dns=not-an-ip", "--stage1-path="+nspawnACI(t), busybox(t))
	e.fails("--hosts-entry", "--insecure-options=image", "run", "--hosts-entry=198.51.100.7", "--stage1-path="+nspawnACI(t), busybox(t))
	netGC(t, e)
	requireNetRestored(t, before)
}

func TestNspawnNetBadConfigLeavesNothing(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	writeNet(t, e, "20-noplugin.conf", `{"cniVersion": "1.0.0", "name": "noplugin", "type": "macvlan", "master": "lo"}`)
	writeNet(t, e, "30-tiny.conflist", `{"cniVersion": "1.0.0", "name": "tiny", "plugins": [
  {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.78.0/30", "rangeStart": "10.251.78.2", "rangeEnd": "10.251.78.2"}]]}}]}`)
	run := func(want string, net string, script string) {
		t.Helper()
		e.fails(want, "--insecure-options=image", "run", "--net="+net, "--stage1-path="+nspawnACI(t), busybox(t), "--exec=/bin/sh", "--", "-c", script)
	}
	run(`network "nosuch"`, "nosuch", "true")
	run("macvlan", "noplugin", "true")
	p := startNetPod(t, e, []string{"--net=tiny"}, "echo ready; exec sleep 600")
	run("no IP addresses available", "tiny", "true")
	p.stop(t, e)
	writeNet(t, e, "05-broken.conflist", `{"cniVersion": "1.0.0", "name": "broken", "plugins": [`)
	run("05-broken.conflist", "default", "true")
	netGC(t, e)
	requireNetRestored(t, before)
}

func TestNspawnNetKilledRunAndLostNamespace(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	p := startNetPod(t, e, []string{"--net=default", "--port=http:18081"}, httpdScript)
	// SIGKILL the stage1's run (nscn exec'd it); systemd-nspawn gets its
	// parent-death signal and ends the pod.
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.wait()
	// A "reboot": the namespace pin is gone.
	pin := "/run/netns/nscn-" + p.uuid
	for range 100 {
		if err := syscall.Unmount(pin, syscall.MNT_DETACH); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.Remove(pin)
	// Wait for the pod to have exited, then collect it.
	for range 100 {
		r := e.run("gc", "--grace-period=0s")
		if r.code == 0 && len(strings.TrimSpace(e.run("list", "--no-legend").stdout)) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	netGC(t, e)
	requireNetRestored(t, before)
}
