package networking

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/networking/portfwd"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// These cases fail in validation, before anything touches the host, so
// they need no root.
func TestSetupRefusesBadConfig(t *testing.T) {
	fakePlugins := t.TempDir()
	for _, p := range []string{"ptp", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(fakePlugins, p), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil { //nolint:gosec // G306: an executable fake plugin
			t.Fatal(err)
		}
	}
	conf := t.TempDir()
	if err := os.MkdirAll(filepath.Join(conf, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"bad.conflist":   `{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"ptp"}`,
		"br.conflist":    `{"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge"}]}`,
		"old.conf":       `{"cniVersion":"0.2.0","name":"old","type":"ptp"}`,
		"noipam.conf":    `{"cniVersion":"1.0.0","name":"noipam","type":"ptp","ipam":{"type":"dhcp"}}`,
		"README.md":      "ignored",
		"other.conflist": `{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`,
	}
	for name, c := range files {
		if err := os.WriteFile(filepath.Join(conf, "net.d", name), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goodConf := t.TempDir()
	ports := []portfwd.Mapping{{Name: "http", HostPort: 18080, PodPort: 80, Protocol: "tcp"}}

	tests := []struct {
		name      string
		cfg       Config
		wantClass error
	}{
		{name: "unknown network", cfg: Config{Nets: Nets{{Name: "nope"}}, LocalConfig: goodConf}, wantClass: errdefs.ErrNotFound},
		{name: "malformed json", cfg: Config{Nets: Nets{{Name: "other"}}, LocalConfig: conf}, wantClass: errdefs.ErrInvalidArgument},
		{name: "missing plugin", cfg: Config{Nets: Nets{{Name: "default"}}, PluginDirs: []string{t.TempDir()}}, wantClass: errdefs.ErrNotFound},
		{name: "no plugin dir", cfg: Config{Nets: Nets{{Name: "default"}}, PluginDirs: []string{}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "ports with host", cfg: Config{Nets: Nets{{Name: "host"}}, Ports: ports}, wantClass: errdefs.ErrInvalidArgument},
		{name: "ports with none", cfg: Config{Nets: Nets{{Name: "none"}}, Ports: ports}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad uuid", cfg: Config{UUID: "../x", Nets: Nets{{Name: "default"}}}, wantClass: errdefs.ErrInvalidArgument},
		{name: "bad nets", cfg: Config{Nets: Nets{{Name: "host"}, {Name: "default"}}}, wantClass: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := t.TempDir()
			c := tt.cfg
			c.PodDir = pod
			if c.UUID == "" {
				c.UUID = "6f2e0a6c-0000-4000-8000-000000000001"
			}
			if c.PluginDirs == nil {
				c.PluginDirs = []string{fakePlugins}
			}
			c.NetNSDir = filepath.Join(t.TempDir(), "netns")
			c.PortClaimDir = filepath.Join(t.TempDir(), "ports")
			_, err := Setup(context.Background(), c)
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("Setup = %v, want class %v", err, tt.wantClass)
			}
			for _, p := range []string{filepath.Join(pod, stage1abi.NetNSFile), filepath.Join(pod, stage1abi.NetInfoDir), c.NetNSDir, c.PortClaimDir} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s exists after a refused Setup", p)
				}
			}
		})
	}
}

func TestTeardownNothing(t *testing.T) {
	if err := Teardown(context.Background(), t.TempDir()); err != nil {
		t.Fatalf("Teardown of a pod without network: %v", err)
	}
}

func TestTeardownRefusesForeignNetNSPath(t *testing.T) {
	pod := t.TempDir()
	victim := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pod, stage1abi.NetNSFile), []byte(victim+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(context.Background(), pod); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Teardown = %v, want invalid argument", err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("Teardown removed a file it does not own: %v", err)
	}
}
