package hypervisor

import (
	"slices"
	"strings"
	"testing"

	"github.com/nosecone/nscn/internal/kvm"
)

func TestSize(t *testing.T) {
	tests := []struct {
		name     string
		apps     []AppLimits
		hostCPUs int
		mem      int64
		cpus     int
	}{
		{name: "no limits", apps: []AppLimits{{}}, hostCPUs: 8, mem: OverheadMiB + DefaultAppMiB, cpus: 1},
		{name: "memory limit rounded up to MiB", apps: []AppLimits{{MemoryBytes: 64<<20 + 1}}, hostCPUs: 8, mem: OverheadMiB + 65, cpus: 1},
		{name: "two apps", apps: []AppLimits{{MemoryBytes: 256 << 20, CPUMilli: 1500}, {}}, hostCPUs: 8, mem: OverheadMiB + 256 + DefaultAppMiB, cpus: 3},
		{name: "two apps without limits", apps: []AppLimits{{}, {}}, hostCPUs: 8, mem: OverheadMiB + 2*DefaultAppMiB, cpus: 2},
		{name: "cpus add up", apps: []AppLimits{{CPUMilli: 600}, {CPUMilli: 600}}, hostCPUs: 8, mem: OverheadMiB + 2*DefaultAppMiB, cpus: 2},
		{name: "capped by the host", apps: []AppLimits{{CPUMilli: 16000}}, hostCPUs: 2, mem: OverheadMiB + DefaultAppMiB, cpus: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, cpus := Size(tt.apps, tt.hostCPUs)
			if mem != tt.mem || cpus != tt.cpus {
				t.Fatalf("Size = %d MiB, %d vCPUs; want %d, %d", mem, cpus, tt.mem, tt.cpus)
			}
		})
	}
}

func TestArgv(t *testing.T) {
	c := Config{
		QEMU: "/usr/bin/qemu-system-x86_64", Kernel: "/k", Initrd: "/i", Accel: kvm.AccelTCG,
		MemoryMiB: 320, CPUs: 2, RootSocket: "kvm/root.sock", ControlSocket: "kvm/control.sock",
		EnterSocket: "kvm/enter.sock",
		Console:     "kvm/console.log", Ports: []Port{{Name: "nscn.a.stdout", FD: 3}, {Name: "nscn.a.stdin", Socket: "kvm/stdin.sock"}},
		NICs: []NIC{{FD: 4, MAC: "02:00:00:00:00:01"}}, Cmdline: []string{"ip=x"},
	}
	a := Argv(c)
	joined := strings.Join(a, " ")
	for _, want := range []string{
		"-machine q35,accel=tcg", "-cpu Nehalem", "-m 320", "-smp 2", "-nodefaults",
		"memory-backend-memfd,id=mem,size=320M,share=on",
		"socket,id=root,path=kvm/root.sock", "tag=nscnroot",
		"socket,id=control,path=kvm/control.sock,server=on,wait=off",
		"socket,id=enter,path=kvm/enter.sock,server=on,wait=off", "name=nscn.enter",
		"file,id=port0,path=/dev/fd/3,append=on", "name=nscn.a.stdout",
		"socket,id=port1,path=kvm/stdin.sock,server=on,wait=on", "name=nscn.a.stdin",
		"file,id=console,path=kvm/console.log,append=on",
		"tap,id=net0,fd=4", "mac=02:00:00:00:00:01",
		"-kernel /k", "-initrd /i",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q: %s", want, joined)
		}
	}
	if i := slices.Index(a, "-append"); i < 0 || !strings.HasPrefix(a[i+1], "console=ttyS0 ") || !strings.HasSuffix(a[i+1], " ip=x") {
		t.Errorf("kernel command line: %q", a)
	}
	c.Accel, c.NICs, c.Console = kvm.AccelKVM, nil, "stdio"
	joined = strings.Join(Argv(c), " ")
	if !strings.Contains(joined, "-cpu host") || strings.Contains(joined, "netdev") || !strings.Contains(joined, "stdio,id=console") {
		t.Errorf("kvm, no NIC, console on stdio: %s", joined)
	}
}
