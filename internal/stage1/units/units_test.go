package units

import (
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/testutil"
)

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) { t.Helper(); testutil.Golden(t, name, []byte(got)) }

// render joins the files as they would be written, each under a header.
func render(files []File) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString("### " + f.Name + "\n" + f.Content)
	}
	return b.String()
}

// testConfig gives each app its FIFOs under /nscn/io/NAME/.
func testConfig(apps ...App) Config {
	for i := range apps {
		if !apps[i].Console && apps[i].Stdout == "" {
			apps[i].Stdout = "/nscn/io/" + apps[i].Name + "/stdout"
			apps[i].Stderr = "/nscn/io/" + apps[i].Name + "/stderr"
		}
	}
	return Config{Apps: apps, Helper: "/nscn/app"}
}

// withJournal gives c the pod journald of the stage1-nspawn image.
func withJournal(c Config) Config {
	c.Journal = &Journal{Journald: "/usr/lib/systemd/systemd-journald", Journalctl: "/usr/bin/journalctl"}
	return c
}

func TestGenerateGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "one-app", cfg: testConfig(App{Name: "web"})},
		{name: "three-apps-with-handlers", cfg: testConfig(App{Name: "a"}, App{Name: "b-2", PreStart: true}, App{Name: "c", PostStop: true, PreStart: true})},
		{name: "interactive-console", cfg: testConfig(App{Name: "sh", Console: true})},
		{name: "journal", cfg: withJournal(testConfig(App{Name: "web"}, App{Name: "ready", Notify: true}, App{Name: "hooks", PreStart: true, PostStop: true, Notify: true}))},
		{name: "socket-activated", cfg: withJournal(testConfig(
			App{Name: "web", Notify: true, Sockets: []Socket{{Name: "http", Protocol: "tcp", Port: 8080}}},
			App{Name: "dns", PreStart: true, Sockets: []Socket{{Name: "dns-udp", Protocol: "udp", Port: 5353, Count: 2}, {Name: "dns-tcp", Protocol: "tcp", Port: 5353}}},
		))},
		{name: "journal-interactive-console", cfg: withJournal(testConfig(App{Name: "sh", Console: true}))},
		{name: "mutable-sandbox", cfg: mutable(withJournal(testConfig()))},
		{name: "v2-limits", cfg: testConfig(
			App{Name: "db", Limits: cgroup.Limits{MemoryMax: 64 << 20, CPUQuota: 50000, CPUShares: 2048}},
			App{Name: "web", PreStart: true},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Generate(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".golden", render(files))
		})
	}
}

// TestImageUnits: with Config.ImageUnits, Generate leaves out exactly
// what Shared returns for the pod's journal, and nothing else: the two
// together are the units of a pod without it, whatever the pod.
func TestImageUnits(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{name: "one app", cfg: testConfig(App{Name: "web"})},
		{name: "journal", cfg: withJournal(testConfig(App{Name: "web"}, App{Name: "hooks", PreStart: true, PostStop: true, Notify: true}))},
		{name: "sockets", cfg: withJournal(testConfig(App{Name: "dns", Sockets: []Socket{{Name: "dns", Protocol: "udp", Port: 53}}}))},
		{name: "console", cfg: withJournal(testConfig(App{Name: "sh", Console: true}))},
		{name: "mutable", cfg: mutable(withJournal(testConfig()))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			all, err := Generate(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := tt.cfg
			c.ImageUnits = true
			own, err := Generate(c)
			if err != nil {
				t.Fatal(err)
			}
			shared, err := Shared(c.Journal)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, f := range own {
				if f.Name != "default.target" && !strings.HasPrefix(f.Name, "app-") {
					t.Errorf("the pod's own units hold %s", f.Name)
				}
				seen[f.Name] = true
			}
			for _, f := range shared {
				if seen[f.Name] {
					t.Errorf("%s is both the pod's and the image's", f.Name)
				}
			}
			got := append(own, shared...)
			slices.SortFunc(got, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
			if render(got) != render(all) {
				t.Errorf("the pod's and the image's units are not the pod's units:\n%s\nwant\n%s", render(got), render(all))
			}
		})
	}
	if _, err := Shared(&Journal{Journald: "journald", Journalctl: "/usr/bin/journalctl"}); err == nil {
		t.Error("Shared took a relative journald")
	}
}

// TestSharedGolden: the units the stage1-nspawn image ships
// (scripts/build-stage1-nspawn.sh, stage1/cmd/mkunits), and a pod's own
// beside them.
func TestSharedGolden(t *testing.T) {
	shared, err := Shared(withJournal(Config{}).Journal)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "shared-journal.golden", render(shared))
	c := withJournal(testConfig(App{Name: "web"}))
	c.ImageUnits = true
	own, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "image-units-one-app.golden", render(own))
}

// TestMountTargets: the targets the pod's mount units name are units of
// their own, none of a pod's or of Shared's, and start, stop or order
// nothing: only the mount units' own dependencies point at them.
func TestMountTargets(t *testing.T) {
	targets := MountTargets()
	golden(t, "mount-targets.golden", render(targets))
	shared, err := Shared(withJournal(Config{}).Journal)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := Generate(withJournal(testConfig(App{Name: "web"})))
	if err != nil {
		t.Fatal(err)
	}
	taken := map[string]bool{}
	for _, f := range append(shared, pod...) {
		taken[f.Name] = true
	}
	for _, f := range targets {
		if !strings.HasSuffix(f.Name, ".target") || taken[f.Name] {
			t.Errorf("%s: not a target of its own", f.Name)
		}
		for _, l := range strings.Split(f.Content, "\n") {
			k, _, _ := strings.Cut(l, "=")
			switch k {
			case "", "[Unit]", "Description":
			case "DefaultDependencies":
				if l != "DefaultDependencies=no" {
					t.Errorf("%s: %s", f.Name, l)
				}
			default:
				t.Errorf("%s: %s: a dependency or setting of its own", f.Name, l)
			}
		}
	}
}

// mutable makes c a mutable pod's (app sandbox).
func mutable(c Config) Config { c.Mutable = true; return c }

// TestAppUnitsGolden: the units app/add writes for one app of a
// running mutable pod are its service and socket alone.
func TestAppUnitsGolden(t *testing.T) {
	tests := []struct {
		name string
		app  App
	}{
		{name: "app-units-web", app: App{Name: "web"}},
		{name: "app-units-socket-handlers", app: App{Name: "dns", PreStart: true, PostStop: true, Sockets: []Socket{{Name: "dns", Protocol: "udp", Port: 5353}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := withJournal(testConfig(tt.app))
			files, err := AppUnits(Config{Helper: c.Helper, Journal: c.Journal}, c.Apps[0])
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".golden", render(files))
		})
	}
	if _, err := AppUnits(Config{Helper: "/nscn/app"}, App{Name: "a b", Stdout: "/o", Stderr: "/e"}); err == nil {
		t.Error("AppUnits took an app name with a space")
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no apps", cfg: testConfig()},
		{name: "name with a space", cfg: testConfig(App{Name: "a b"})},
		{name: "name with a newline", cfg: testConfig(App{Name: "a\nExecStart=/bin/evil"})},
		{name: "uppercase name", cfg: testConfig(App{Name: "Web"})},
		{name: "name with a slash", cfg: testConfig(App{Name: "../x"})},
		{name: "relative helper", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e"}}, Helper: "app"}},
		{name: "specifier in a path", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o%n", Stderr: "/e"}}, Helper: "/nscn/app"}},
		{name: "no stdout path", cfg: Config{Apps: []App{{Name: "a", Stderr: "/e"}}, Helper: "/nscn/app"}},
		{name: "space in stderr path", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e rr"}}, Helper: "/nscn/app"}},
		{name: "negative memory limit", cfg: testConfig(App{Name: "a", Limits: cgroup.Limits{MemoryMax: -1}})},
		{name: "relative journald", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e"}}, Helper: "/nscn/app", Journal: &Journal{Journald: "journald", Journalctl: "/usr/bin/journalctl"}}},
		{name: "journalctl with a specifier", cfg: Config{Apps: []App{{Name: "a", Stdout: "/o", Stderr: "/e"}}, Helper: "/nscn/app", Journal: &Journal{Journald: "/j", Journalctl: "/usr/bin/journalctl%i"}}},
		{name: "socket port 0", cfg: testConfig(App{Name: "a", Sockets: []Socket{{Name: "p", Protocol: "tcp"}}})},
		{name: "socket ports past 65535", cfg: testConfig(App{Name: "a", Sockets: []Socket{{Name: "p", Protocol: "tcp", Port: 65535, Count: 2}}})},
		{name: "socket protocol sctp", cfg: testConfig(App{Name: "a", Sockets: []Socket{{Name: "p", Protocol: "sctp", Port: 1}}})},
		{name: "socket name with a newline", cfg: testConfig(App{Name: "a", Sockets: []Socket{{Name: "p\nExecStart=/x", Protocol: "tcp", Port: 1}}})},
		{name: "cpu quota below 1ms", cfg: testConfig(App{Name: "a", Limits: cgroup.Limits{CPUQuota: 999}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Generate(tt.cfg); err == nil {
				t.Fatalf("Generate(%+v) succeeded", tt.cfg)
			}
		})
	}
}

func TestServiceName(t *testing.T) {
	if got := ServiceName("web"); got != "app-web.service" {
		t.Fatalf("ServiceName = %q", got)
	}
}

// TestLimitLines checks the unit form of each limit: systemd turns
// CPUQuota= back into cpu.max for the period, so the percentage must give
// at least the quota asked for.
func TestLimitLines(t *testing.T) {
	tests := []struct {
		name string
		l    cgroup.Limits
		want []string
	}{
		{name: "none", l: cgroup.Limits{}},
		{name: "memory", l: cgroup.Limits{MemoryMax: 1 << 30}, want: []string{"MemoryMax=1073741824"}},
		{name: "half a cpu", l: cgroup.Limits{CPUQuota: 50000}, want: []string{"CPUQuota=50.00%"}},
		{name: "two cpus", l: cgroup.Limits{CPUQuota: 200000}, want: []string{"CPUQuota=200.00%"}},
		{name: "1ms of 100ms", l: cgroup.Limits{CPUQuota: 1000}, want: []string{"CPUQuota=1.00%"}},
		{name: "rounded up", l: cgroup.Limits{CPUQuota: 33333}, want: []string{"CPUQuota=33.34%"}},
		{name: "other period", l: cgroup.Limits{CPUQuota: 25000, CPUPeriod: 50000}, want: []string{"CPUQuota=50.00%", "CPUQuotaPeriodSec=50000us"}},
		{name: "shares", l: cgroup.Limits{CPUShares: 1024}, want: []string{"CPUWeight=39"}},
		{
			name: "all", l: cgroup.Limits{MemoryMax: 4096, CPUQuota: 150000, CPUShares: 262144},
			want: []string{"MemoryMax=4096", "CPUQuota=150.00%", "CPUWeight=10000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := limitLines(tt.l)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("limitLines(%+v) = %q, want %q", tt.l, got, tt.want)
			}
		})
	}
}
