package cli

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/networking/cni"
	"github.com/nosecone/nscn/stage0/prepare"
)

// writeNetRecord records network name of the pod at podDir as the stage1
// does once ADD succeeded: result is a CNI result in the current spec
// version ("" for a record written before ADD).
func writeNetRecord(t *testing.T, podDir, name string, index int, result string) {
	t.Helper()
	r := &cni.Record{
		Version: cni.RecordVersion, Name: name, Index: index, IfName: "eth" + strconv.Itoa(index),
		ContainerID: "c", NetNS: "/var/run/netns/x", PluginDirs: []string{"/usr/lib/cni"},
		Config: json.RawMessage(`{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"ptp"}]}`),
	}
	if result != "" {
		r.Result = json.RawMessage(result)
	}
	if err := cni.WriteRecord(podDir, r); err != nil {
		t.Fatal(err)
	}
}

// ptpResult is what the ptp plugin returns: the host's veth end first,
// then the pod's eth0, with the pod's addresses on interface 1.
const ptpResult = `{"cniVersion":"1.0.0",
 "interfaces":[{"name":"veth1234"},{"name":"eth0","sandbox":"/var/run/netns/x"}],
 "ips":[{"interface":1,"address":"172.16.28.7/24","gateway":"172.16.28.1"},
        {"interface":0,"address":"172.16.28.1/32"},
        {"interface":1,"address":"fd00::7/64"}]}`

func TestPodsNetworks(t *testing.T) {
	f := newPodFixture(t)
	running := f.mkPod(podSpec{state: pod.Running})
	writeNetRecord(t, running.Path, "default", 0, ptpResult)
	writeNetRecord(t, running.Path, "other", 1, `{"cniVersion":"1.0.0","interfaces":[{"name":"eth1","sandbox":"/var/run/netns/x"}],"ips":[{"interface":0,"address":"10.1.0.2/16"}]}`)
	writeNetRecord(t, running.Path, "pending", 2, "")
	exited := f.mkPod(podSpec{state: pod.Exited, statuses: map[string]int{"web": 0}})
	// A record the stage1 left behind (a crash before teardown) says
	// nothing of an exited pod.
	writeNetRecord(t, exited.Path, "default", 0, ptpResult)

	const want = "default:ip4=172.16.28.7,default:ip6=fd00::7,other:ip4=10.1.0.2,pending"
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{name: "status", args: []string{"status", running.UUID}, check: func(t *testing.T, out string) {
			if !strings.Contains(out, "\nnetworks="+want+"\n") {
				t.Errorf("status of the running pod has no networks=%s line:\n%s", want, out)
			}
		}},
		{name: "status exited", args: []string{"status", exited.UUID}, check: func(t *testing.T, out string) {
			if strings.Contains(out, "networks=") {
				t.Errorf("status of an exited pod names networks:\n%s", out)
			}
		}},
		{name: "list", args: []string{"list"}, check: func(t *testing.T, out string) {
			lines := strings.Split(out, "\n")
			if !strings.HasSuffix(strings.TrimSpace(lines[0]), "NETWORKS") {
				t.Errorf("legend has no NETWORKS column: %q", lines[0])
			}
			if row := rowOf(t, lines, running.UUID[:8]); !strings.HasSuffix(row, "  "+want) {
				t.Errorf("row of the running pod does not end in its networks: %q", row)
			}
			if row := rowOf(t, lines, exited.UUID[:8]); !strings.HasSuffix(row, " -") {
				t.Errorf("row of the exited pod does not end in -: %q", row)
			}
		}},
		{name: "list json", args: []string{"list", "--format=json"}, check: func(t *testing.T, out string) {
			if strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("--format=json is not one line, as in rkt:\n%s", out)
			}
			var pods []podJSON
			if err := json.Unmarshal([]byte(out), &pods); err != nil {
				t.Fatal(err)
			}
			for _, p := range pods {
				if p.UUID == exited.UUID && p.Networks != nil {
					t.Errorf("exited pod has networks %+v", p.Networks)
				}
				if p.UUID != running.UUID {
					continue
				}
				wantNets := []podNetJSON{
					{NetName: "default", IfName: "eth0", IP: "172.16.28.7", Mask: "255.255.255.0", IP6: "fd00::7/64"},
					{NetName: "other", IfName: "eth1", IP: "10.1.0.2", Mask: "255.255.0.0"},
					{NetName: "pending", IfName: "eth2"},
				}
				if len(p.Networks) != len(wantNets) {
					t.Fatalf("networks = %+v, want %+v", p.Networks, wantNets)
				}
				for i := range wantNets {
					if p.Networks[i] != wantNets[i] {
						t.Errorf("network %d = %+v, want %+v", i, p.Networks[i], wantNets[i])
					}
				}
			}
		}},
		{name: "status json-pretty", args: []string{"status", "--format=json-pretty", running.UUID}, check: func(t *testing.T, out string) {
			if !strings.Contains(out, "\n  \"networks\": [") {
				t.Errorf("--format=json-pretty is not indented or has no networks:\n%s", out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, f.mustRun(tt.args...)) })
	}
}

// TestRunFlagsAsRkt checks the run and prepare command lines an rkt user
// writes, parsed and turned into prepare options without fetching.
func TestRunFlagsAsRkt(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	writeTestFile(t, envFile, "# a comment\n; an rkt comment\n\nA=1\n  ;indented=comment\nB=two words\n", 0o644)
	tests := []struct {
		name  string
		cmd   string // run or prepare
		args  []string
		err   string // part of the usage error; "" for none
		check func(t *testing.T, o prepare.Options)
	}{
		{name: "pod manifest and set-env", cmd: onlyRun, args: []string{"--pod-manifest=/p", "--set-env=A=1"}, err: "conflicting flags set with --pod-manifest: --set-env"},
		{name: "pod manifest and inherit-env", cmd: onlyRun, args: []string{"--pod-manifest=/p", "--inherit-env"}, err: "conflicting flags set with --pod-manifest: --inherit-env"},
		{name: "pod manifest and volume, mount", cmd: onlyPrepare, args: []string{"--pod-manifest=/p", "--volume=d,kind=empty", "--mount=volume=d,target=/d"}, err: "--mount, --volume"},
		{name: "pod manifest and port", cmd: onlyRun, args: []string{"--pod-manifest=/p", "--port=http:8080"}, err: "conflicting flags set with --pod-manifest: --port"},
		{name: "pod manifest and run flags", cmd: onlyRun, args: []string{"--pod-manifest=" + filepath.Join(dir, "missing"), "--net=host", "--hostname=h"}, err: "read pod manifest"},
		{name: "set-env-file comments", cmd: onlyRun, args: []string{"--set-env-file=" + envFile, "example.com/app"}, check: func(t *testing.T, o prepare.Options) {
			got := o.Apps[0].Env
			if len(got) != 2 || got[0].Name != "A" || got[0].Value != "1" || got[1].Name != "B" || got[1].Value != "two words" {
				t.Errorf("env = %+v, want A=1 and B=two words", got)
			}
		}},
		{name: "environment", cmd: onlyRun, args: []string{"example.com/app", "--environment=X=y", "--set-env=Z=w"}, check: func(t *testing.T, o prepare.Options) {
			got := o.Apps[0].Env
			if len(got) != 2 || got[0].Name != "Z" || got[1].Name != "X" || got[1].Value != "y" {
				t.Errorf("env = %+v, want Z=w and X=y", got)
			}
		}},
		{name: "mount trailing slash", cmd: onlyRun, args: []string{"--volume=a,kind=empty", "--volume=b,kind=empty", "--mount=volume=a,target=/data", "example.com/app", "--mount=volume=b,target=/data/"}, check: func(t *testing.T, o prepare.Options) {
			got := o.Apps[0].Mounts
			if len(got) != 1 || got[0].Volume != "b" || got[0].Path != "/data" {
				t.Errorf("mounts = %+v, want b at /data alone", got)
			}
		}},
		{name: "user annotation and label", cmd: onlyPrepare, args: []string{"--user-annotation=team=web", "--user-label=env=prod", "--user-label=env=staging", "example.com/app"}, check: func(t *testing.T, o prepare.Options) {
			if o.UserAnnotations["team"] != "web" || len(o.UserAnnotations) != 1 || o.UserLabels["env"] != "staging" || len(o.UserLabels) != 1 {
				t.Errorf("user annotations %v, labels %v", o.UserAnnotations, o.UserLabels)
			}
		}},
		{name: "user label without value", cmd: onlyRun, args: []string{"--user-label=env", "example.com/app"}, err: `--user-label "env": want NAME=VALUE`},
		{name: "prepare refuses net", cmd: onlyPrepare, args: []string{"--net=host", "example.com/app"}, err: "--net applies when the pod runs: give it to run-prepared"},
		{name: "prepare refuses ipc", cmd: onlyPrepare, args: []string{"--ipc=private", "example.com/app"}, err: "--ipc applies when the pod runs"},
		{name: "prepare refuses pid", cmd: onlyPrepare, args: []string{"--pid=parent", "example.com/app"}, err: "--pid applies when the pod runs"},
		{name: "prepare refuses interactive", cmd: onlyPrepare, args: []string{"--interactive", "example.com/app"}, err: "--interactive applies when the pod runs"},
		{name: "run refuses quiet", cmd: onlyRun, args: []string{"--quiet", "example.com/app"}, err: "--quiet is a flag of nscn prepare"},
		{name: "prepare quiet", cmd: onlyPrepare, args: []string{"--quiet", "example.com/app"}},
		{name: "no overlay", cmd: onlyRun, args: []string{"--no-overlay", "example.com/app"}, check: func(t *testing.T, o prepare.Options) {
			if !o.NoOverlay {
				t.Error("--no-overlay did not reach the prepare options")
			}
		}},
		{name: "no overlay is pod-wide", cmd: onlyRun, args: []string{"example.com/app", "--no-overlay"}, err: "applies to the whole pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra, err := parseRunArgs(tt.args, tt.cmd)
			var o prepare.Options
			if err == nil {
				o, _, err = prepareOptions(&Globals{}, ra)
			}
			if tt.err != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestHostsEntryHostTwice(t *testing.T) {
	for _, tt := range []struct {
		entries []string
		err     bool
	}{
		{entries: []string{"host"}},
		{entries: []string{"host", "host"}},
		{entries: []string{"host", "10.0.0.1=a"}, err: true},
		{entries: []string{"10.0.0.1=a", "host"}, err: true},
	} {
		d, err := dnsFlags{HostsEntries: tt.entries}.plan()
		if tt.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%q: err = %v, want a usage error", tt.entries, err)
			}
			continue
		}
		if err != nil || d.ConfMode != "hosts=host" {
			t.Errorf("%q: conf mode %q, err %v; want hosts=host", tt.entries, d.ConfMode, err)
		}
	}
}

func TestIPCFlag(t *testing.T) {
	for _, v := range []string{"", "auto", "private", "parent"} {
		if err := checkIPC(v); err != nil {
			t.Errorf("--ipc=%s: %v", v, err)
		}
	}
	if err := checkIPC("shared"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("--ipc=shared: err = %v, want a usage error", err)
	}
}

func TestPIDFlag(t *testing.T) {
	for _, v := range []string{"", "auto", "private", "parent"} {
		if err := checkPID(v); err != nil {
			t.Errorf("--pid=%s: %v", v, err)
		}
	}
	for _, v := range []string{"host", "shared", "PARENT"} {
		if err := checkPID(v); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("--pid=%s: err = %v, want a usage error", v, err)
		}
	}
}

// TestPrepareHelpOwnFlags checks that the help of prepare lists only the
// flags prepare takes, and run's only run's.
func TestPrepareHelpOwnFlags(t *testing.T) {
	prep, run := prepareFlagsHelp(), runFlagsHelp()
	for _, f := range []string{"--net=", "--hostname=", "--interactive", "--ipc=", "--pid=", "--dns=", "--hosts-entry=", "--mds-register"} {
		if strings.Contains(prep, f) {
			t.Errorf("prepare's help lists %s, a flag of run and run-prepared", f)
		}
		if !strings.Contains(run, f) {
			t.Errorf("run's help does not list %s", f)
		}
	}
	if !strings.Contains(prep, "--quiet") || strings.Contains(run, "--quiet") {
		t.Errorf("--quiet belongs to prepare's help alone")
	}
	for _, f := range []string{"--volume=", "--user-annotation=", "--environment=", "--pod-manifest="} {
		if !strings.Contains(prep, f) || !strings.Contains(run, f) {
			t.Errorf("%s missing from the help of run or prepare", f)
		}
	}
}

// TestImageByName checks that every image subcommand takes an image name
// as rkt's did, and says "not in the store" only of an image that is not.
func TestImageByName(t *testing.T) {
	f := newPodFixture(t)
	key, _ := f.testImage("example.com/app")
	out := t.TempDir()
	for _, args := range [][]string{
		{"image", "cat-manifest", "example.com/app"},
		{"image", "render", "example.com/app"},
		{"image", "extract", "example.com/app", filepath.Join(out, "x")},
		{"image", "export", "example.com/app", filepath.Join(out, "x.aci")},
		{"image", "verify", "example.com/app"},
		{"image", "cat-manifest", key[:12]},
	} {
		stdout, stderr, err := f.run(args...)
		if err != nil {
			t.Errorf("nscn %s: %v\n%s", strings.Join(args, " "), err, stderr)
			continue
		}
		if args[1] == "cat-manifest" && !strings.Contains(stdout, `"example.com/app"`) {
			t.Errorf("nscn %s printed %q", strings.Join(args, " "), stdout)
		}
	}
	for _, ref := range []string{"example.com/other", "example.com/app:2.0", "sha512-0123"} {
		_, _, err := f.run("image", "cat-manifest", ref)
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "in the store") {
			t.Errorf("image cat-manifest %s: err = %v, want not found in the store", ref, err)
		}
	}
	if _, _, err := f.run("image", "cat-manifest", "Not A Name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("image cat-manifest of a malformed name: err = %v, want a usage error", err)
	}

	_, stderr, err := f.run("image", "rm", "example.com/app")
	if err != nil {
		t.Fatalf("image rm by name: %v\n%s", err, stderr)
	}
	if !strings.HasSuffix(stderr, "\n1 image(s) successfully removed\n") || !strings.Contains(stderr, key) {
		t.Errorf("image rm stderr = %q, want the image and rkt's count", stderr)
	}
	if keys := f.storedKeys(); len(keys) != 0 {
		t.Errorf("images left: %v", keys)
	}
	_, stderr, _ = f.run("image", "rm", "example.com/app")
	if strings.Contains(stderr, "successfully removed") || !strings.Contains(stderr, "in the store") {
		t.Errorf("image rm of a removed name: stderr = %q", stderr)
	}
}

func TestUUIDFile(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited, statuses: map[string]int{"web": 3}})
	file := filepath.Join(t.TempDir(), "uuid")
	writeTestFile(t, file, p.UUID+"\n", 0o644)
	if out := f.mustRun("status", "--uuid-file="+file); !strings.Contains(out, "app-web=3\n") {
		t.Errorf("status --uuid-file printed %q", out)
	}
	if out := f.mustRun("cat-manifest", "--uuid-file", file); !strings.Contains(out, `"PodManifest"`) {
		t.Errorf("cat-manifest --uuid-file printed %q", out)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{args: []string{"status", "--uuid-file=" + file, p.UUID}, err: "exactly one pod"},
		{args: []string{"cat-manifest"}, err: "a pod UUID (or --uuid-file) is required"},
		{args: []string{"export", "--uuid-file=" + file}, err: "a pod (a UUID or --uuid-file) and an OUTPUT file are required"},
		{args: []string{"export", p.UUID}, err: "an OUTPUT file are required"},
		{args: []string{"enter", "--uuid-file=" + filepath.Join(t.TempDir(), "none")}, err: "read --uuid-file"},
	} {
		_, _, err := f.run(tt.args...)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("nscn %s: err = %v, want a usage error with %q", strings.Join(tt.args, " "), err, tt.err)
		}
	}
}

func TestImageListSort(t *testing.T) {
	f := newPodFixture(t)
	for _, n := range []string{"example.com/b", "example.com/c", "example.com/a"} {
		f.testImage(n)
	}
	names := func(args ...string) string {
		out := f.mustRun(append([]string{"image", "list", "--no-legend", "--fields=name"}, args...)...)
		return strings.Join(strings.Fields(out), " ")
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{want: "example.com/b example.com/c example.com/a"},
		{args: []string{"--order=desc"}, want: "example.com/a example.com/c example.com/b"},
		{args: []string{"--sort=name"}, want: "example.com/a example.com/b example.com/c"},
		{args: []string{"--sort=name", "--order=desc"}, want: "example.com/c example.com/b example.com/a"},
		{args: []string{"--sort=size,name"}, want: "example.com/a example.com/b example.com/c"},
	} {
		if got := names(tt.args...); got != tt.want {
			t.Errorf("image list %s: %s, want %s", strings.Join(tt.args, " "), got, tt.want)
		}
	}
	for _, args := range [][]string{{"--sort=bogus"}, {"--order=up"}} {
		if _, _, err := f.run(append([]string{"image", "list"}, args...)...); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("image list %s: err = %v, want a usage error", args, err)
		}
	}
}

func TestGlobalFlagsFirst(t *testing.T) {
	app := NewApp(strings.NewReader(""), io.Discard, io.Discard)
	tests := []struct{ in, want string }{
		{"nscn status --dir=/x UUID", "nscn --dir=/x status UUID"},
		{"nscn --debug status --dir /x --format=json UUID", "nscn --debug --dir /x status --format=json UUID"},
		{"nscn image list --insecure-options=image --full", "nscn --insecure-options=image image list --full"},
		{"nscn run --insecure-options=image --volume v,kind=empty app.aci --debug --exec /x -- --dir=/y", "nscn --insecure-options=image --debug run --volume v,kind=empty app.aci --exec /x -- --dir=/y"},
		{"nscn prepare --quiet --dir /x app.aci", "nscn --dir /x prepare --quiet app.aci"},
		// What follows a command's first argument is the command's.
		{"nscn enter UUID ls --dir", "nscn enter UUID ls --dir"},
		{"nscn enter --app=web --debug UUID ls --debug", "nscn --debug enter --app=web UUID ls --debug"},
		{"nscn status --wait --dir /x UUID", "nscn --dir /x status --wait UUID"},
		{"nscn --dir /x list", "nscn --dir /x list"},
		{"nscn bogus --dir /x", "nscn bogus --dir /x"},
		{"nscn", "nscn"},
	}
	for _, tt := range tests {
		got := strings.Join(GlobalFlagsFirst(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("GlobalFlagsFirst(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}

	// And the command runs with them.
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited, statuses: map[string]int{"web": 0}})
	var out, errb strings.Builder
	app = NewApp(strings.NewReader(""), &out, &errb)
	if err := app.RunContext(t.Context(), GlobalFlagsFirst(app, []string{"nscn", "status", "--dir", f.dir, p.UUID})); err != nil {
		t.Fatalf("status with --dir after it: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "state=exited") {
		t.Errorf("status printed %q", out.String())
	}
}

// TestUserConfigAuth checks that an rkt auth.d file in the user config
// directory (--user-config, given after the command as rkt allowed) is
// read as it is.
func TestUserConfigAuth(t *testing.T) {
	f := newPodFixture(t)
	user := t.TempDir()
	writeTestFile(t, filepath.Join(user, "auth.d", "a.json"),
		`{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic","credentials":{"user":"u","password":"p"}}`, 0o644)
	var out, errb strings.Builder
	app := NewApp(strings.NewReader(""), &out, &errb)
	args := GlobalFlagsFirst(app, []string{"nscn", "--dir", f.dir, "--local-config", f.local, "config", "--user-config", user})
	if err := app.RunContext(t.Context(), args); err != nil {
		t.Fatalf("config: %v\n%s", err, errb.String())
	}
	var cfg configOutput
	if err := json.Unmarshal([]byte(out.String()), &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range cfg.Stage0 {
		if e.Kind == "paths" && e.UserConfigDir != user {
			t.Errorf("paths: user-config %q, want %q", e.UserConfigDir, user)
		}
		if e.Kind == "auth" && len(e.Domains) == 1 && e.Domains[0] == "example.com" && strings.HasPrefix(e.File, user) {
			found = true
		}
	}
	if !found {
		t.Errorf("the user's rkt auth entry is not in:\n%s", out.String())
	}
}

// TestRunRefusesNonRoot checks that run, prepare and run-prepared refuse
// a non-root user before anything exists: no data directory is made.
func TestRunRefusesNonRoot(t *testing.T) {
	old := geteuid
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = old })
	f := newPodFixture(t)
	for _, args := range [][]string{
		{"--insecure-options=image", "run", "/nonexistent/app.aci"},
		{"prepare", "/nonexistent/app.aci"},
		{"run-prepared", "0123"},
	} {
		_, _, err := f.run(args...)
		if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "as root only") {
			t.Errorf("nscn %s as uid 1000: err = %v, want permission denied", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(f.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory after refused commands: %v", err)
	}
	// --help still works.
	if _, _, err := f.run("prepare", "--help"); err != nil {
		t.Errorf("prepare --help as uid 1000: %v", err)
	}
}

// TestStatusAfterUnmount checks that status still shows the apps' exit
// statuses of an exited pod whose stage1 root filesystem is no longer
// mounted (after a reboot): they are read from the overlay's upper
// directory in the pod directory.
func TestStatusAfterUnmount(t *testing.T) {
	f := newPodFixture(t)
	p := f.mkPod(podSpec{state: pod.Exited, apps: []string{"web", "db"}})
	upper, _ := mountplan.Stage1OverlayDirs(p.Path)
	writeTestFile(t, filepath.Join(upper, "rkt", "status", "web"), "0\n", 0o644)
	writeTestFile(t, filepath.Join(upper, "rkt", "status", "db"), "137\n", 0o644)
	out := f.mustRun("status", p.UUID)
	for _, want := range []string{"\napp-web=0\n", "\napp-db=137\n", "\nexited=true\n", "\nfinished="} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", strings.TrimSpace(want), out)
		}
	}
}
