package cri

import (
	"errors"
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
)

func TestSandboxPIDArgs(t *testing.T) {
	withPID := func(mode runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: mode},
		}}}
	}
	tests := []struct {
		name    string
		cfg     *runtimeapi.PodSandboxConfig
		handler string
		want    []string
		err     error
	}{
		{name: "no config", cfg: &runtimeapi.PodSandboxConfig{}},
		{name: "pod", cfg: withPID(runtimeapi.NamespaceMode_POD)},
		{name: "container", cfg: withPID(runtimeapi.NamespaceMode_CONTAINER)},
		{name: "node", cfg: withPID(runtimeapi.NamespaceMode_NODE), want: []string{"--pid=parent"}},
		{name: "node on nspawn", cfg: withPID(runtimeapi.NamespaceMode_NODE), handler: "nspawn", want: []string{"--pid=parent"}},
		{name: "node on kvm", cfg: withPID(runtimeapi.NamespaceMode_NODE), handler: "kvm", err: errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sandboxPIDArgs(tt.cfg, tt.handler)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("sandboxPIDArgs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSandboxIPCArgs(t *testing.T) {
	withIPC := func(mode runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Ipc: mode},
		}}}
	}
	ipcSysctls, err := parseSysctls(map[string]string{"kernel.shmmax": "1024"}, false)
	if err != nil {
		t.Fatal(err)
	}
	netSysctls, err := parseSysctls(map[string]string{"net.ipv4.ip_forward": "1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     *runtimeapi.PodSandboxConfig
		handler string
		sysctls []sysctl
		want    []string
		err     error
	}{
		{name: "no config", cfg: &runtimeapi.PodSandboxConfig{}},
		{name: "pod", cfg: withIPC(runtimeapi.NamespaceMode_POD), sysctls: ipcSysctls},
		{name: "node", cfg: withIPC(runtimeapi.NamespaceMode_NODE), want: []string{"--ipc=parent"}},
		{name: "node on nspawn", cfg: withIPC(runtimeapi.NamespaceMode_NODE), handler: "nspawn", want: []string{"--ipc=parent"}},
		{name: "node with net sysctls", cfg: withIPC(runtimeapi.NamespaceMode_NODE), sysctls: netSysctls, want: []string{"--ipc=parent"}},
		{name: "node with ipc sysctls", cfg: withIPC(runtimeapi.NamespaceMode_NODE), sysctls: ipcSysctls, err: errdefs.ErrInvalidArgument},
		{name: "node on kvm", cfg: withIPC(runtimeapi.NamespaceMode_NODE), handler: "kvm", err: errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sandboxIPCArgs(tt.cfg, tt.handler, tt.sysctls)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("sandboxIPCArgs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
