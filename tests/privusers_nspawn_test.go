//go:build functional && nspawn

package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosecone/nscn/internal/idrange"
)

// End-to-end tests of run --private-users on stage1-nspawn
// (Documentation/security.md, "--private-users").

// podRange reads the ID range stage0 recorded for a pod.
func podRange(t *testing.T, e *env, uuid string) idrange.Range {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", uuid))
	if len(dirs) != 1 {
		t.Fatalf("pod %s: directories %v", uuid, dirs)
	}
	b, err := os.ReadFile(filepath.Join(dirs[0], "private-users"))
	if err != nil {
		t.Fatalf("pod %s has no range record: %v", uuid, err)
	}
	r, err := idrange.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != idrange.Size || r.Base < 0x80000 || r.Base%idrange.Size != 0 {
		t.Fatalf("pod %s got range %v, not an aligned %d-ID slot of systemd's container range", uuid, r, idrange.Size)
	}
	return r
}

// uidMapOf returns the range an app printed as its /proc/self/uid_map
// line "uid_map: 0 BASE COUNT".
func uidMapOf(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "uid_map:"); ok {
			return strings.Join(strings.Fields(rest), " ")
		}
	}
	t.Fatalf("no uid_map line in %q", out)
	return ""
}

// hostOwner is the owner and group of a host file.
func hostOwner(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

// volumeDir is a host directory every pod user may write: a pod's root
// is an unprivileged host user.
func volumeDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil { //nolint:gosec // G302: a volume for the pods' unprivileged host users, in the test's own 0700 directory
		t.Fatal(err)
	}
	// The test's temporary directories are root's, 0700: the pod reaches
	// the volume through its bind, never through these.
	return d
}

const privUsersScript = `echo "uid_map: $(cat /proc/self/uid_map)"; echo "id: $(id -u):$(id -g)"; ` +
	`echo "eff: $(grep CapEff /proc/self/status)"; echo "bin-owner: $(stat -c %u:%g /bin/busybox)"; ` +
	`touch /vol/by-$AC_APP_NAME && echo wrote`

// TestNspawnPrivateUsers runs a pod with --private-users on each way its
// files get their owners (an overlay, chowned with metadata-only copies
// up, and a --no-overlay copy, idmapped where the filesystem allows it)
// and on the default CNI network, and checks from inside and from the
// host that its root is an unprivileged host user of its own range.
func TestNspawnPrivateUsers(t *testing.T) {
	e := newNetEnv(t)
	before := netSnapshot(t)
	tests := []struct {
		name  string
		flags []string
	}{
		{name: "overlay-default-net", flags: []string{"--net=default"}},
		{name: "copy-host-net", flags: []string{"--net=host", "--no-overlay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vol := volumeDir(t)
			uuidFile := filepath.Join(t.TempDir(), "uuid")
			args := append([]string{
				"--insecure-options=image", "run", "--private-users", "--uuid-file-save=" + uuidFile,
				"--stage1-path=" + nspawnACI(t), "--volume=vol,kind=host,source=" + vol,
			}, tt.flags...)
			args = append(args, busybox(t), "--mount=volume=vol,target=/vol", "--exec=/bin/sh", "--", "-c", privUsersScript+`; ip -4 addr show eth0 2>/dev/null | grep -o "inet [0-9.]*"`)
			r := e.ok(args...)
			uuid := readUUID(t, uuidFile)
			rg := podRange(t, e, uuid)
			if got, want := uidMapOf(t, r.stdout), "0 "+strconv.FormatUint(uint64(rg.Base), 10)+" 65536"; got != want {
				t.Errorf("the app's uid_map is %q, want %q (the recorded range)", got, want)
			}
			for _, want := range []string{"id: 0:0", "bin-owner: 0:0", "wrote"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the app's output lacks %q: %s", want, r.stdout)
				}
			}
			// Root in the pod is the range's base on the host.
			if u, g := hostOwner(t, filepath.Join(vol, "by-busybox")); u != rg.Base || g != rg.Base {
				t.Errorf("the file the pod's root made in a host volume is %d:%d on the host, want %d:%d", u, g, rg.Base, rg.Base)
			}
			if strings.Contains(strings.Join(tt.flags, " "), "default") && !strings.Contains(r.stdout, "inet 172.16.28.") {
				t.Errorf("the pod has no address on the default network: %s", r.stdout)
			}
			// The store's trees are shared by pods: never chowned.
			trees, _ := filepath.Glob(filepath.Join(e.dir, "cas", "tree", "*", "rootfs", "bin", "busybox"))
			if len(trees) == 0 {
				t.Fatal("no busybox tree in the store")
			}
			for _, p := range trees {
				if u, g := hostOwner(t, p); u != 0 || g != 0 {
					t.Errorf("the store's tree file %s is %d:%d, want 0:0", p, u, g)
				}
			}
		})
	}
	netGC(t, e)
	requireNetRestored(t, e, before)
}

// TestNspawnPrivateUsersAppUser runs an app as a user other than root in
// a pod with --private-users: it is that user inside, the range's base
// plus its uid on the host.
func TestNspawnPrivateUsersAppUser(t *testing.T) {
	e := newNetEnv(t)
	vol := volumeDir(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.ok(append(nspawnRunArgs(t, "--private-users", "--uuid-file-save="+uuidFile, "--volume=vol,kind=host,source="+vol),
		busybox(t), "--user=1000", "--group=1000", "--mount=volume=vol,target=/vol", "--exec=/bin/sh", "--", "-c", privUsersScript)...)
	rg := podRange(t, e, readUUID(t, uuidFile))
	for _, want := range []string{"id: 1000:1000", "eff: CapEff:\t0000000000000000", "wrote"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the app's output lacks %q: %s", want, r.stdout)
		}
	}
	if u, g := hostOwner(t, filepath.Join(vol, "by-busybox")); u != rg.Base+1000 || g != rg.Base+1000 {
		t.Errorf("the app's file in a host volume is %d:%d on the host, want %d:%d", u, g, rg.Base+1000, rg.Base+1000)
	}
	netGC(t, e)
}

// TestNspawnPrivateUsersConcurrentPods starts two pods with
// --private-users at once: each gets a range of its own, and the files
// each pod's root makes in a shared volume belong to different host
// users.
func TestNspawnPrivateUsersConcurrentPods(t *testing.T) {
	e := newNetEnv(t)
	vol := volumeDir(t)
	script := `echo "uid_map: $(cat /proc/self/uid_map)"; touch /vol/$AC_APP_NAME; echo ready; exec sleep 60`
	start := func(name string) *bgPod {
		return startPod(t, e, 60*time.Second, []string{"ready"}, append(nspawnRunArgs(t, "--private-users", "--volume=vol,kind=host,source="+vol),
			busybox(t), "--name="+name, "--mount=volume=vol,target=/vol", "--exec=/bin/sh", "--", "-c", script)...)
	}
	// Started one after the other, running together: the allocation
	// under the data directory's lock is raced by
	// internal/pod.TestAllocatePrivateUsersConcurrently.
	a := start("one")
	b := start("two")
	ra, rb := podRange(t, e, a.uuid), podRange(t, e, b.uuid)
	if ra.Overlaps(rb) {
		t.Fatalf("two running pods got overlapping ranges %v and %v", ra, rb)
	}
	if uidMapOf(t, a.out.String()) == uidMapOf(t, b.out.String()) {
		t.Fatalf("two pods share a uid_map: %s", a.out.String())
	}
	// What one pod's root owns, the other's root does not (ls -n shows
	// the overflow ID for a host owner outside its namespace).
	owners := func(p *bgPod, app string) string {
		return e.ok("enter", "--app="+app, p.uuid, "/bin/stat", "-c", "%u", "/vol/one", "/vol/two").stdout
	}
	// enter runs as the shifted host user, outside the pod's namespace:
	// it sees the host's IDs.
	wantOne := strconv.FormatUint(uint64(ra.Base), 10) + "\n" + strconv.FormatUint(uint64(rb.Base), 10) + "\n"
	if got := owners(a, "one"); got != wantOne {
		t.Errorf("the volume's files, seen from pod one: %q, want %q", got, wantOne)
	}

	for _, p := range []*bgPod{a, b} {
		e.ok("stop", p.uuid)
		_ = p.wait()
	}
	netGC(t, e)
}

// TestNspawnPrivateUsersEnter: a command entered into a pod with
// --private-users runs as the app's user shifted to the host's IDs and
// with no capability, never more than the app has.
func TestNspawnPrivateUsersEnter(t *testing.T) {
	e := newNetEnv(t)
	p := startPod(t, e, 60*time.Second, []string{"ready"}, append(nspawnRunArgs(t, "--private-users"),
		busybox(t), "--exec=/bin/sh", "--", "-c", "echo ready; exec sleep 60")...)
	rg := podRange(t, e, p.uuid)
	r := e.ok("enter", "--app=busybox", p.uuid, "/bin/sh", "-c", `id -u; grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status`)
	want := strconv.FormatUint(uint64(rg.Base), 10) + "\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"
	if r.stdout != want {
		t.Errorf("entered command printed %q, want %q", r.stdout, want)
	}
	e.ok("stop", p.uuid)
	_ = p.wait()
	netGC(t, e)
}

// TestPrivateUsersRefusedWithoutUserNamespaces: fly runs as the host's
// users, kvm in a VM; --private-users with either is refused: with fly
// (interface version 6) before any pod exists, with kvm (13, for its app
// entrypoints) by its run, before any VM is started.
func TestPrivateUsersRefusedWithoutUserNamespaces(t *testing.T) {
	e := newEnv(t)
	e.fails("cannot run a pod in a user namespace", "--insecure-options=image", "run", "--private-users",
		"--stage1-from-dir=stage1-fly.aci", busybox(t), "--exec=/bin/true")
	e.fails("cannot run a pod in a user namespace", "--insecure-options=image", "prepare", "--private-users",
		"--stage1-from-dir=stage1-fly.aci", busybox(t), "--exec=/bin/true")
	assertNoPods(t, e)
	// stage1-kvm's boundary is its virtual machine: its run refuses the
	// flag before it starts one; the pod that stage0 prepared is left
	// exited, for gc.
	if kvm := os.Getenv("NSCN_STAGE1_KVM_ACI"); kvm != "" {
		r := e.fails("--private-users", "--insecure-options=image", "run", "--private-users",
			"--stage1-path="+kvm, busybox(t), "--exec=/bin/true")
		if r.code != 254 || strings.Contains(r.stderr, "accelerator=") {
			t.Errorf("run --private-users on kvm: exit %d, want 254 before any VM:\n%s", r.code, r.stderr)
		}
		e.ok("gc", "--grace-period=0s")
		assertNoPods(t, e)
	}
}

// TestNspawnWithoutPrivateUsers: a pod without the flag has the host's
// users, as before (its systemd-nspawn argv is golden-tested in
// stage1/nspawn), and no range record.
func TestNspawnWithoutPrivateUsers(t *testing.T) {
	e := newNetEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.ok(append(nspawnRunArgs(t, "--uuid-file-save="+uuidFile), busybox(t), "--exec=/bin/sh", "--", "-c", `echo "uid_map: $(cat /proc/self/uid_map)"`)...)
	if got := uidMapOf(t, r.stdout); got != "0 0 4294967295" {
		t.Errorf("uid_map of a pod without --private-users is %q", got)
	}
	uuid := readUUID(t, uuidFile)
	if m, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", uuid, "private-users")); len(m) != 0 {
		t.Errorf("a pod without --private-users has a range record: %v", m)
	}
	netGC(t, e)
}

// TestNspawnPrivateUsersPrepared: run-prepared runs a pod that prepare
// gave a range with that range.
func TestNspawnPrivateUsersPrepared(t *testing.T) {
	e := newNetEnv(t)
	r := e.ok("--insecure-options=image", "prepare", "--private-users", "--stage1-path="+nspawnACI(t), busybox(t),
		"--exec=/bin/sh", "--", "-c", `echo "uid_map: $(cat /proc/self/uid_map)"`)
	uuid := strings.TrimSpace(r.stdout)
	rg := podRange(t, e, uuid)
	out := e.ok("run-prepared", "--net=host", uuid)
	if got, want := uidMapOf(t, out.stdout), strconv.FormatUint(uint64(rg.Base), 10); !strings.HasPrefix(got, "0 "+want+" ") {
		t.Errorf("run-prepared's app has uid_map %q, want the prepared range %v", got, rg)
	}
	netGC(t, e)
}
