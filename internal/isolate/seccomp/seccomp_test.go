package seccomp

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	elastic "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

func TestFilterRulesGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		build  func() (*Filter, error)
	}{
		{name: "default", golden: "default.rules", build: func() (*Filter, error) { return Default(), nil }},
		{name: "remove set with group", golden: "remove-group-enotsup.rules", build: func() (*Filter, error) {
			return FromRemoveSet([]string{"clock_settime", GroupDefaultBlacklist, "reboot"}, "ENOTSUP")
		}},
		{name: "remove set empty wildcard", golden: "remove-empty-kill.rules", build: func() (*Filter, error) {
			return FromRemoveSet([]string{"uname", Empty}, "")
		}},
		{name: "remove set plain", golden: "remove-plain-eperm.rules", build: func() (*Filter, error) {
			return FromRemoveSet([]string{"uname", "mkdirat", "mkdir", "uname"}, "EPERM")
		}},
		{name: "retain set", golden: "retain-network-kill.rules", build: func() (*Filter, error) {
			return FromRetainSet([]string{"accept", "bind", "listen", "read", "socket", "write"}, "")
		}},
		{name: "retain set errno", golden: "retain-errno.rules", build: func() (*Filter, error) {
			return FromRetainSet([]string{"read", "write", GroupLifecycle}, "EACCES")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			testutil.Golden(t, tt.golden, []byte(f.Rules()))
		})
	}
}

func TestSetsRefused(t *testing.T) {
	tests := []struct {
		name   string
		retain bool
		set    []string
		errno  string
	}{
		{name: "empty remove set", set: nil},
		{name: "all in remove set", set: []string{All}},
		{name: "empty in retain set", retain: true, set: []string{"read", Empty}},
		{name: "docker group", set: []string{"@docker/default-blacklist"}},
		{name: "upper case name", set: []string{"Uname"}},
		{name: "path as name", set: []string{"../uname"}},
		{name: "unknown errno", set: []string{"uname"}, errno: "EFLY"},
		{name: "lower case errno", retain: true, set: []string{"read"}, errno: "eperm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.retain {
				_, err = FromRetainSet(tt.set, tt.errno)
			} else {
				_, err = FromRemoveSet(tt.set, tt.errno)
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error = %v, want invalid argument", err)
			}
		})
	}
}

func TestRetainAllIsNoFilter(t *testing.T) {
	f, err := FromRetainSet([]string{"read", All}, "EPERM")
	if err != nil || f != nil {
		t.Fatalf("FromRetainSet(all) = %v, %v; want nil, nil", f, err)
	}
}

func TestErrnoAliases(t *testing.T) {
	for _, pair := range [][2]string{{"ENOTSUP", "EOPNOTSUPP"}, {"EAGAIN", "EWOULDBLOCK"}, {"EDEADLK", "EDEADLOCK"}} {
		a, errA := errnoValue(pair[0])
		b, errB := errnoValue(pair[1])
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s = %d (%v), %s = %d (%v); want the same number", pair[0], a, errA, pair[1], b, errB)
		}
	}
}

// run evaluates p on one syscall with the BPF interpreter of x/net/bpf.
// That interpreter loads words big-endian, so seccomp_data is encoded
// big-endian here: the program sees the same values the kernel would.
func run(t *testing.T, p *Program, auditArch uint32, nr uint32) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(p.Instructions)
	if err != nil {
		t.Fatalf("program rejected: %v", err)
	}
	data := make([]byte, 64) // struct seccomp_data
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], auditArch)
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v) //nolint:gosec // G115: a seccomp action is 32 bits
}

func TestProgramSemantics(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skipf("no syscall table for this architecture: %v", err)
	}
	nr := func(name string) uint32 {
		n, ok := info.SyscallNames[name]
		if !ok {
			t.Fatalf("%s has no %s", info.Name, name)
		}
		return uint32(n) //nolint:gosec // G115: a syscall number
	}
	native := uint32(info.ID)
	const foreign = 0x40000003 // AUDIT_ARCH_I386
	allow := uint32(elastic.ActionAllow)
	kill := uint32(elastic.ActionKillProcess)
	errno := func(e uint16) uint32 { return uint32(elastic.ActionErrno) | uint32(e) }
	eperm, _ := errnoValue("EPERM")
	enotsup, _ := errnoValue("ENOTSUP")

	// A retain-set with nearly everything makes the long-jump path of
	// the assembler work too (more than 255 instructions).
	var most []string
	for name := range info.SyscallNames {
		if name != "uname" && name != "mkdirat" {
			most = append(most, name)
		}
	}

	type call struct {
		arch uint32
		nr   uint32
		want uint32
	}
	tests := []struct {
		name   string
		filter func() (*Filter, error)
		calls  []call
	}{
		{
			name:   "remove set with errno",
			filter: func() (*Filter, error) { return FromRemoveSet([]string{"uname", "mkdirat"}, "ENOTSUP") },
			calls: []call{
				{native, nr("uname"), errno(enotsup)},
				{native, nr("mkdirat"), errno(enotsup)},
				{native, nr("read"), allow},
				{foreign, nr("read"), kill},
			},
		},
		{
			name:   "remove set kills",
			filter: func() (*Filter, error) { return FromRemoveSet([]string{"uname"}, "") },
			calls:  []call{{native, nr("uname"), kill}, {native, nr("getpid"), allow}},
		},
		{
			name:   "default",
			filter: func() (*Filter, error) { return Default(), nil },
			calls:  []call{{native, nr("bpf"), errno(eperm)}, {native, nr("keyctl"), errno(eperm)}, {native, nr("uname"), allow}},
		},
		{
			name:   "retain set with errno",
			filter: func() (*Filter, error) { return FromRetainSet(most, "EPERM") },
			calls: []call{
				{native, nr("uname"), errno(eperm)},
				{native, nr("mkdirat"), errno(eperm)},
				{native, nr("read"), allow},
				{native, nr("execve"), allow},
				{foreign, nr("read"), kill},
			},
		},
		{
			name:   "retain set kills",
			filter: func() (*Filter, error) { return FromRetainSet([]string{"read", "write"}, "") },
			calls: []call{
				{native, nr("write"), allow},
				{native, nr("exit_group"), allow}, // lifecycle
				{native, nr("uname"), kill},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.filter()
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.Assemble()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.calls {
				if got := run(t, p, c.arch, c.nr); got != c.want {
					t.Errorf("arch %#x syscall %d (%s): action %#x, want %#x", c.arch, c.nr, info.SyscallNumbers[int(c.nr)], got, c.want)
				}
			}
		})
	}
}

func TestAssembleSkipsMissingSyscalls(t *testing.T) {
	f, err := FromRemoveSet([]string{"uname", "no_such_syscall"}, "EPERM")
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Skipped) != 1 || p.Skipped[0] != "no_such_syscall" {
		t.Fatalf("Skipped = %v", p.Skipped)
	}
}

func FuzzFromSet(f *testing.F) {
	f.Add("uname,mkdirat", "EPERM", false)
	f.Add("read,"+Empty, "", true)
	f.Fuzz(func(t *testing.T, set, errno string, retain bool) {
		entries := strings.Split(set, ",")
		var fl *Filter
		var err error
		if retain {
			fl, err = FromRetainSet(entries, errno)
		} else {
			fl, err = FromRemoveSet(entries, errno)
		}
		if err != nil || fl == nil {
			return
		}
		for _, s := range fl.Syscalls {
			if !validName(s) {
				t.Fatalf("filter holds %q", s)
			}
		}
		if _, err := fl.Assemble(); err != nil {
			t.Fatalf("valid filter does not assemble: %v", err)
		}
	})
}
