//go:build functional && nspawn

package tests

import (
	"encoding/json"
	"errors"
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
)

// These tests send traffic only between the host and the pods they start
// (172.16.28.0/24 of the default network, 10.251.77.0/24 and
// 10.251.78.0/30 of their own test networks) and to 127.0.0.1.

// startNetPod starts a busybox pod on the stage1-nspawn image with the
// given pod flags, running script, and waits until it printed "ready".
func startNetPod(t *testing.T, e *env, podFlags []string, script string) *bgPod {
	t.Helper()
	args := append([]string{"--insecure-options=image", "run", "--stage1-path=" + nspawnACI(t)}, podFlags...)
	args = append(args, busybox(t), "--exec=/bin/sh", "--", "-c", script)
	return startPod(t, e, 30*time.Second, []string{"ready"}, args...)
}

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
	requireNetRestored(t, e, before)
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
	requireNetRestored(t, e, before)
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
	requireNetRestored(t, e, before)
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
	requireNetRestored(t, e, before)
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
	requireNetRestored(t, e, before)
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
	requireNetRestored(t, e, before)
}
