//go:build functional

package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type criImage struct {
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags"`
	RepoDigests []string `json:"repoDigests"`
	Size        string   `json:"size"`
	UID         *struct {
		Value string `json:"value"`
	} `json:"uid"`
	Username string `json:"username"`
}

func (s *criServer) images() []criImage {
	s.t.Helper()
	out, _ := s.crictl(true, "images", "-o", "json")
	var got struct {
		Images []criImage `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		s.t.Fatalf("crictl images: %v\n%s", err, out)
	}
	return got.Images
}

func (s *criServer) inspect(ref string) criImage {
	s.t.Helper()
	out, _ := s.crictl(true, "inspecti", "-o", "json", ref)
	var got struct {
		Status criImage `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		s.t.Fatalf("crictl inspecti %s: %v\n%s", ref, err, out)
	}
	return got.Status
}

// TestCRIImageService drives nscn cri's image service with crictl, as a
// kubelet would: pulls by tag under the operator's registries.d trust
// (TLS verified against the test CA), two tags of one image seen as one
// image, lookups by tag, ID and digest, a refused untrusted tag, removal
// by one tag removing every tag, the image filesystem, and the state
// surviving a restart of the server.
func TestCRIImageService(t *testing.T) {
	reg := startRegistry(t, registryOpts{tls: true})
	img := greetImage(t)
	digest := reg.push("team/greet:v1", img)
	reg.push("team/greet:v2", img)
	otherDigest := reg.push("other/app:v1", imageOf(t, v1.Config{User: "www-data", Cmd: []string{"/bin/true"}}, busyboxLayer(t)))
	e := teamEnv(t, reg)
	socket := filepath.Join(t.TempDir(), "cri.sock")
	s := startCRI(t, e, socket)

	if out, _ := s.crictl(true, "version"); !strings.Contains(out, "RuntimeName:  nscn") || !strings.Contains(out, "RuntimeApiVersion:  v1") {
		t.Fatalf("crictl version:\n%s", out)
	}

	v1, v2 := reg.host+"/team/greet:v1", reg.host+"/team/greet:v2"
	s.crictl(true, "pull", v1)
	s.crictl(true, "pull", v2)
	ims := s.images()
	if len(ims) != 1 {
		t.Fatalf("two tags of one image are %d images: %+v", len(ims), ims)
	}
	im := ims[0]
	if !slices.Equal(im.RepoTags, []string{v1, v2}) || !slices.Contains(im.RepoDigests, reg.host+"/team/greet@"+digest) || !strings.HasPrefix(im.ID, "sha256:") || im.Size == "0" {
		t.Fatalf("image %+v; want tags %s, %s and digest %s", im, v1, v2, digest)
	}
	for _, ref := range []string{v1, v2, im.ID, strings.TrimPrefix(im.ID, "sha256:"), reg.host + "/team/greet@" + digest} {
		if got := s.inspect(ref); got.ID != im.ID {
			t.Errorf("inspecti %s: id %s, want %s", ref, got.ID, im.ID)
		}
	}
	if got := s.inspect(v1); got.UID == nil || got.UID.Value != "0" {
		t.Errorf("an image without a user: uid %+v, want 0", got.UID)
	}
	// The store holds it as nscn fetch would have: nscn sees it.
	if list := e.ok("image", "list", "--format=json").stdout; !strings.Contains(list, digest) {
		t.Fatalf("nscn image list does not show the pulled image:\n%s", list)
	}

	// A tag of a repository registries.d does not name is refused, with
	// the digest to pin; by that digest it is taken.
	other := reg.host + "/other/app"
	if _, stderr := s.crictl(false, "pull", other+":v1"); !strings.Contains(stderr, "not pinned by digest") {
		t.Fatalf("untrusted tag refused without saying why:\n%s", stderr)
	}
	s.crictl(true, "pull", other+"@"+otherDigest)
	if got := s.inspect(other + "@" + otherDigest); got.Username != "www-data" || got.UID != nil || len(got.RepoTags) != 0 {
		t.Errorf("digest-pulled image %+v: want username www-data, no uid, no tags", got)
	}
	if len(s.images()) != 2 {
		t.Fatalf("want 2 images: %+v", s.images())
	}

	out, _ := s.crictl(true, "imagefsinfo", "-o", "json")
	var fs struct {
		Status struct {
			ImageFilesystems []struct {
				UsedBytes struct {
					Value string `json:"value"`
				} `json:"usedBytes"`
			} `json:"imageFilesystems"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &fs); err != nil || len(fs.Status.ImageFilesystems) != 1 || fs.Status.ImageFilesystems[0].UsedBytes.Value == "0" {
		t.Fatalf("imagefsinfo: %v\n%s", err, out)
	}

	// Restarted, the server sees what is on disk.
	s.stop()
	s = startCRI(t, e, socket)
	if len(s.images()) != 2 {
		t.Fatalf("after a restart: %+v", s.images())
	}

	// Removing by one tag removes the image with every tag.
	s.crictl(true, "rmi", v2)
	for _, i := range s.images() {
		if i.ID == im.ID {
			t.Fatalf("image %s still listed after rmi %s: %+v", im.ID, v2, i)
		}
	}
	if _, stderr := s.crictl(false, "inspecti", "-o", "json", v1); !strings.Contains(stderr, "no such image") {
		t.Fatalf("inspecti by the other tag:\n%s", stderr)
	}
	if list := e.ok("image", "list", "--format=json").stdout; strings.Contains(list, digest) {
		t.Fatalf("the store still holds the removed image:\n%s", list)
	}
	s.crictl(true, "rmi", other+"@"+otherDigest)
	if n := len(s.images()); n != 0 {
		t.Fatalf("%d images left", n)
	}
	// Nothing of the server is left in its log but its own lines.
	sc := bufio.NewScanner(strings.NewReader(s.output()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "panic") || strings.Contains(sc.Text(), "goroutine ") {
			t.Fatalf("server log:\n%s", s.output())
		}
	}
}

// TestCRIRefusesASecondServer: a socket a live server answers on is not
// taken over, and a stale one (a killed server's) is.
func TestCRIRefusesASecondServer(t *testing.T) {
	e := newEnv(t)
	socket := filepath.Join(t.TempDir(), "cri.sock")
	s := startCRI(t, e, socket)
	e.refused([]string{"cri", "--listen=" + socket}, "another server answers")
	// Killed, it leaves its socket; the next server replaces it.
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
	if _, err := os.Lstat(socket); err != nil {
		t.Fatalf("a killed server left no socket to test with: %v", err)
	}
	startCRI(t, e, socket)
}

// TestCRIPullWithCredentials: the credentials a pull request carries
// (crictl --creds, the kubelet's image pull secrets) are sent to the
// registry it pulls from; without them a private repository refuses.
func TestCRIPullWithCredentials(t *testing.T) {
	reg := startRegistry(t, registryOpts{auth: true})
	reg.push("team/greet:v1", greetImage(t))
	e := newEnv(t)
	writeJSON(t, filepath.Join(e.local, "registries.d", "team.json"), map[string]any{
		"nscnKind": "registryTrust", "nscnVersion": "v1",
		"repositories": []string{reg.host + "/team"}, "acceptTags": true,
	})
	s := startCRI(t, e, filepath.Join(t.TempDir(), "cri.sock"), "--insecure-options=http")
	ref := reg.host + "/team/greet:v1"
	if _, stderr := s.crictl(false, "pull", ref); !strings.Contains(strings.ToLower(stderr), "unauthorized") {
		t.Fatalf("a private repository without credentials:\n%s", stderr)
	}
	s.crictl(false, "pull", "--creds", regUser+":wrong", ref)
	s.crictl(true, "pull", "--creds", regUser+":"+regPassword, ref)
	if ims := s.images(); len(ims) != 1 || !slices.Equal(ims[0].RepoTags, []string{ref}) {
		t.Fatalf("images after the pull: %+v", ims)
	}
}

// TestCRIPodLifecycle drives a pod through nscn cri with crictl as a
// kubelet would: a sandbox on the default network, an image pulled, a
// container created, started, listed, exec'd into, stopped with its exit
// status recorded, removed, and the sandbox stopped and removed, leaving
// no pod, mount or network namespace behind.
func TestCRIPodLifecycle(t *testing.T) {
	h := newCRIHarness(t)
	netnsBefore := netnsNames(t)
	podID, podCfg := h.runPod("lifecycle", map[string]any{
		"hostname":      "lifecycle",
		"log_directory": filepath.Join(h.dir, "logs"),
		"labels":        map[string]string{"app": "greet"},
	})
	ctrID := h.createContainer(podID, podCfg, "main", map[string]any{
		"command":  []string{"/bin/sh", "-c", "echo started > /tmp/started; exec sleep 300"},
		"envs":     []map[string]string{{"key": "GREETING", "value": "hello-cri"}},
		"log_path": "main.log",
		"labels":   map[string]string{"role": "main"},
	})
	out, _ := h.crictl(true, "ps", "-a", "-q", "--pod", podID)
	if strings.TrimSpace(out) != ctrID {
		t.Fatalf("crictl ps -a --pod: %q, want %s", out, ctrID)
	}
	h.crictl(true, "start", ctrID)
	if out, _ := h.crictl(true, "ps", "-q", "--state", "running"); strings.TrimSpace(out) != ctrID {
		t.Fatalf("running containers: %q, want %s", out, ctrID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := h.crictl(true, "exec", "--sync", ctrID, "/bin/sh", "-c", "cat /tmp/started; echo $GREETING")
		if strings.Fields(out) != nil && strings.Join(strings.Fields(out), " ") == "started hello-cri" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec in the container printed %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, stderr := h.crictl(false, "exec", "--sync", ctrID, "/bin/sh", "-c", "exit 3"); !strings.Contains(stderr, "3") {
		t.Fatalf("exec's exit status 3 not reported:\n%s", stderr)
	}
	out, _ = h.crictl(true, "inspectp", "-o", "json", podID)
	var ps struct {
		Status struct {
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil || ps.Status.State != "SANDBOX_READY" || !strings.HasPrefix(ps.Status.Network.IP, "172.") {
		t.Fatalf("inspectp: %v\n%s", err, out)
	}

	h.crictl(true, "stop", ctrID)
	if st := h.containerStatus(ctrID); st.State != "CONTAINER_EXITED" || st.ExitCode == 0 {
		t.Fatalf("a stopped container: %+v", st)
	}
	h.removeContainers(ctrID)
	h.removePod(podID)
	if after := netnsNames(t); len(after) > len(netnsBefore) {
		t.Fatalf("network namespaces left: before %v, after %v", netnsBefore, after)
	}
}

// netnsNames lists the named network namespaces of the host.
func netnsNames(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestCRISandboxNetworkFails: a sandbox whose CNI plugin fails (the pod
// network has one address, which the first sandbox holds) is never
// reported, and nothing of it is left: no pod, no namespace, no lease.
// The network is a "default" of the test's own in the server's
// --local-config net.d, on 10.251.80.0/30 with its own IPAM directory.
func TestCRISandboxNetworkFails(t *testing.T) {
	e := newEnv(t)
	ipam := t.TempDir()
	writeJSON(t, filepath.Join(e.local, "net.d", "10-default.conflist"), map[string]any{
		"cniVersion": "1.0.0", "name": "default",
		"plugins": []map[string]any{{"type": "ptp", "ipam": map[string]any{
			"type": "host-local", "dataDir": ipam,
			"ranges": [][]map[string]string{{{"subnet": "10.251.80.0/30", "rangeStart": "10.251.80.2", "rangeEnd": "10.251.80.2"}}},
		}}},
	})
	s := startCRI(t, e, filepath.Join(t.TempDir(), "cri.sock"))
	collectPods(t, e)
	dir := t.TempDir()
	podCfg := func(name string) string {
		p := filepath.Join(dir, name+".json")
		writeJSON(t, p, map[string]any{"metadata": map[string]any{"name": name, "namespace": "default", "uid": "uid-" + name, "attempt": 0}})
		return p
	}
	out, _ := s.crictl(true, "runp", podCfg("first"))
	first := strings.TrimSpace(out)
	pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*"))
	if len(pods) != 1 {
		t.Fatalf("pods after the first sandbox: %v", pods)
	}
	_, stderr := s.crictl(false, "runp", podCfg("second"))
	if !strings.Contains(stderr, "no IP addresses available") {
		t.Fatalf("runp on a full network: %s", stderr)
	}
	// The error carries the sandbox's output, its UUID first.
	second := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).FindString(stderr)
	if second == "" {
		t.Fatalf("no pod UUID in the error: %s", stderr)
	}
	if _, err := os.Lstat("/run/netns/nscn-" + second); err == nil {
		t.Errorf("the sandbox that failed left its namespace")
	}
	if pods, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", "*")); len(pods) != 1 {
		t.Errorf("the sandbox that failed left its pod: %v", pods)
	}
	if out, _ := s.crictl(true, "pods", "-q"); strings.TrimSpace(out) != first {
		t.Errorf("crictl pods: %q, want only %s", out, first)
	}
	leases, _ := filepath.Glob(filepath.Join(ipam, "default", "10.*"))
	if len(leases) != 1 {
		t.Errorf("leases: %v, want the first sandbox's", leases)
	}
	s.crictl(true, "stopp", first)
	s.crictl(true, "rmp", first)
	if leases, _ := filepath.Glob(filepath.Join(ipam, "default", "10.*")); len(leases) != 0 {
		t.Errorf("leases after rmp: %v", leases)
	}
}
