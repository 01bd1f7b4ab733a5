package nspawn

import (
	"os"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/stage1/mkimage"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/testutil"
)

const testUUID = "6f1c0e8a-3b7d-4e0a-9c1e-2a5b4c3d2e1f"

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) { t.Helper(); testutil.Golden(t, name, []byte(got)) }

func TestArgvGolden(t *testing.T) {
	base := ArgvConfig{
		Loader: "/pod/stage1/rootfs/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		LibDir: "/pod/stage1/rootfs/usr/lib/x86_64-linux-gnu",
		Nspawn: "/pod/stage1/rootfs/usr/bin/systemd-nspawn",
		Root:   "/pod/stage1/rootfs",
		UUID:   testUUID,
	}
	tests := []struct {
		name string
		edit func(*ArgvConfig)
	}{
		{name: "host-net", edit: func(c *ArgvConfig) { c.NetMode = sdpod.NetHost }},
		{name: "interactive-console", edit: func(c *ArgvConfig) { c.NetMode = sdpod.NetHost; c.Console = ConsoleInteractive }},
		{name: "no-net-debug-hostname", edit: func(c *ArgvConfig) {
			c.NetMode, c.Debug, c.Hostname = sdpod.NetNone, true, "web1"
		}},
		{name: "cni-netns", edit: func(c *ArgvConfig) {
			c.NetMode, c.NetNS = sdpod.NetCNI, "/run/netns/nscn-"+testUUID
		}},
		{name: "machined-all-caps-binds", edit: func(c *ArgvConfig) {
			c.NetMode, c.Register, c.AllCapabilities = sdpod.NetHost, true, true
			c.Binds = []sdpod.Bind{
				{Source: "/srv/data", Target: "/nscn/host/0", Recursive: true},
				{Source: "/etc/hosts", Target: "/nscn/host/1", ReadOnly: true},
				{Source: `/srv/odd:name\x`, Target: "/nscn/host/2", ReadOnly: true, Recursive: true},
			}
		}},
		{name: "private-users-cni", edit: func(c *ArgvConfig) {
			c.NetMode, c.NetNS = sdpod.NetCNI, "/run/netns/nscn-"+testUUID
			c.PrivateUsers = idrange.Range{Base: 1 << 20, Count: idrange.Size}
		}},
		{name: "retained-caps-app-cgroup", edit: func(c *ArgvConfig) {
			c.NetMode = sdpod.NetHost
			c.Capabilities = []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}
			c.Binds = []sdpod.Bind{{Source: "/sys/fs/cgroup/memory/nscn/" + testUUID + "/web", Target: "/nscn/cgroup/web/memory"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			golden(t, "argv-"+tt.name+".golden", strings.Join(Argv(c), "\n")+"\n")
		})
	}
}

func TestEnv(t *testing.T) {
	if got := strings.Join(Env(false, true), " "); got != "PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_LOG_LEVEL=crit SYSTEMD_SECCOMP=0" {
		t.Errorf("Env(false, true) = %q", got)
	}
	if got := strings.Join(Env(true, false), " "); got != "PATH=/usr/sbin:/usr/bin:/sbin:/bin" {
		t.Errorf("Env(true, false) = %q", got)
	}
}

// TestBuildScriptDeclaresImage keeps the image manifest the build script
// has mkstage1 write in step with this flavor's facts.
func TestBuildScriptDeclaresImage(t *testing.T) {
	b, err := os.ReadFile("../../scripts/build-stage1-nspawn.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := mkimage.Spec{
		Name:             ImageName,
		Entrypoints:      mkimage.Entrypoints{Run: EntrypointRun, Enter: EntrypointEnter, GC: EntrypointGC, Stop: EntrypointStop},
		InterfaceVersion: InterfaceVersion,
	}
	if err := mkimage.CheckBuildScript(b, want); err != nil {
		t.Fatalf("scripts/build-stage1-nspawn.sh: %v", err)
	}
}
