//go:build functional && (nspawn || kvm)

package tests

// Network helpers of the flavors with CNI networks of their own (nspawn
// and kvm).

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/testutil"
)

// netState is what a pod's network may leave on the host.
type netState struct {
	netns, links, iptables, leases []string
	// linkNS is the namespace of a link's peer, by the link's name
	// (ip link's link-netns): a pod's veth names its pod's namespace.
	linkNS map[string]string
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
	s.linkNS = map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
			s.links = append(s.links, name)
			if i := slices.Index(f, "link-netns"); i >= 0 && i+1 < len(f) {
				s.linkNS[name] = f[i+1]
			}
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
//
// The host is shared: the pods of other tests, of other test binaries
// or of the host's users come and go meanwhile, and what their networks
// add is theirs (a namespace nscn-UUID, its veth, its rules, its lease;
// host-local's bookkeeping while one of them holds a lease). Whatever
// names a pod UUID that is not one of e's pods is not counted.
func requireNetRestored(t *testing.T, e *env, before netState) {
	t.Helper()
	e.notePods()
	var diff, others []string
	for range 50 {
		after := netSnapshot(t)
		diff, others = nil, nil
		for _, pair := range [][2][]string{{before.netns, after.netns}, {before.links, after.links}, {before.iptables, after.iptables}, {before.leases, after.leases}} {
			for _, a := range pair[1] {
				if !slices.Contains(pair[0], a) {
					diff = append(diff, a)
				}
			}
		}
		diff, others = e.ownNetState(diff, after)
		if len(diff) == 0 {
			if len(others) > 0 {
				t.Logf("other pods' network state, not counted:\n%s", strings.Join(others, "\n"))
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("left on the host after gc:\n%s\n(other pods', not counted:\n%s)", strings.Join(diff, "\n"), strings.Join(others, "\n"))
}

var podUUIDRe = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// notePods records the UUIDs of e's pods, for requireNetRestored: gc
// removes their directories.
func (e *env) notePods() {
	dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	for _, d := range dirs {
		if e.pods == nil {
			e.pods = map[string]bool{}
		}
		e.pods[filepath.Base(d)] = true
	}
}

// ownNetState splits the entries of diff (netSnapshot's) into those of
// e's pods or of no pod known, and those of other pods.
func (e *env) ownNetState(diff []string, now netState) (own, others []string) {
	// The pod UUIDs an entry names: its own text, a veth's peer
	// namespace, a lease file's contents (host-local writes the
	// container ID, the pod's UUID).
	uuids := func(entry string) []string {
		text := entry
		if ns, ok := now.linkNS[entry]; ok {
			text += " " + ns
		}
		if strings.HasPrefix(entry, "/var/lib/cni/networks/") {
			if b, err := os.ReadFile(entry); err == nil { //nolint:gosec // G304: a file of host-local's directory
				text += " " + string(b)
			}
		}
		return podUUIDRe.FindAllString(text, -1)
	}
	foreign := func(entry string) bool {
		us := uuids(entry)
		if len(us) == 0 {
			return false
		}
		for _, u := range us {
			if e.pods[u] {
				return false
			}
		}
		return true
	}
	// Chains and host-local directories that another pod's entries use.
	var held []string
	for _, l := range append(append([]string{}, now.iptables...), now.leases...) {
		if !foreign(l) {
			continue
		}
		if strings.HasPrefix(l, "/var/lib/cni/networks/") {
			held = append(held, filepath.Dir(l))
			continue
		}
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "CNI-") {
				held = append(held, f)
			}
		}
	}
	for _, d := range diff {
		switch {
		case foreign(d):
			others = append(others, d)
		case strings.HasPrefix(d, "/var/lib/cni/networks/") && (slices.Contains(held, d) || slices.Contains(held, filepath.Dir(d))):
			// host-local's bookkeeping while another pod holds a lease.
			others = append(others, d)
		case strings.HasPrefix(d, "nat :CNI-") || strings.HasPrefix(d, "filter :CNI-"):
			// A chain's declaration: another pod's when its rules are.
			if f := strings.Fields(d); len(f) > 1 && slices.Contains(held, strings.TrimPrefix(f[1], ":")) {
				others = append(others, d)
			} else {
				own = append(own, d)
			}
		default:
			own = append(own, d)
		}
	}
	return own, others
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

// httpGet fetches url from the host, retrying for 5 s while the server
// starts.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	return testutil.HTTPGet(t, url, 5*time.Second)
}

const httpdScript = `mkdir -p /www && echo "hello from $AC_APP_NAME" > /www/index.html && httpd -p 80 -h /www && echo ready && exec sleep 600`

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
	e.notePods()
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
