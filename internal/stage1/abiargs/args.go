package abiargs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// RunArgs are the arguments of the run entrypoint:
//
//	[--debug] --net=… [--interactive] [--mds-token=…] [--local-config=…]
//	[--hostname=…] [--dns-conf-mode=…] [--disable-capabilities-restriction]
//	[--disable-paths] [--disable-seccomp] [--ipc=…] UUID
//
// Flags are --name or --name=value; value flags need the "=" form.
type RunArgs struct {
	Debug       bool
	Net         string // as given; fly accepts only "", default and host
	Interactive bool
	MDSToken    string // ignored: fly runs no metadata service
	LocalConfig string // ignored
	Hostname    string // ignored: fly shares the host's UTS namespace
	DNS         DNSConf
	// The --disable-* flags are accepted and change nothing: fly applies
	// no capability bounding, path masking or seccomp filter to begin with.
	DisableCapabilities bool
	DisablePaths        bool
	DisableSeccomp      bool
	IPC                 string // "", auto or parent; fly cannot isolate IPC
	UUID                string
}

// refused are run flags of newer interface versions that fly takes no
// part of: refused by name, so that a stage0 that passes one anyway is
// told why rather than "unknown flag".
var refused = map[string]string{
	stage1abi.FlagPrivateUsers: "fly runs apps as the host's users, without a user namespace",
}

// EnterArgs are the arguments of the enter entrypoint:
//
//	--pid=PID --appname=NAME -- CMD [ARG…]
type EnterArgs struct {
	PID     int
	AppName string
	Cmd     []string
}

// GCArgs are the arguments of the gc entrypoint: [--debug] [--local-config=…] UUID.
type GCArgs struct {
	Debug       bool
	LocalConfig string
	UUID        string
}

// StopArgs are the arguments of the stop entrypoint: [--force] UUID.
type StopArgs struct {
	Force bool
	UUID  string
}

// flagSpec describes one accepted flag. set receives the value; for a bool
// flag given bare, the value is "true".
type flagSpec struct {
	name   string
	isBool bool
	set    func(string) error
}

func boolFlag(name string, p *bool) flagSpec {
	return flagSpec{name: name, isBool: true, set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("flag --%s: value %q is not a boolean", name, v)
		}
		*p = b
		return nil
	}}
}

func stringFlag(name string, p *string) flagSpec {
	return flagSpec{name: name, set: func(v string) error { *p = v; return nil }}
}

// parseFlags consumes leading flags and returns the remaining arguments.
// A "--" ends the flags and is dropped; so does the first argument that
// does not start with "--".
func parseFlags(argv []string, specs []flagSpec) ([]string, error) {
	for i, arg := range argv {
		if arg == "--" {
			return argv[i+1:], nil
		}
		if !strings.HasPrefix(arg, "--") {
			return argv[i:], nil
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		idx := slices.IndexFunc(specs, func(s flagSpec) bool { return s.name == name })
		if why, ok := refused[name]; ok && idx < 0 {
			return nil, errdefs.Newf(errdefs.ErrNotImplemented, "%s and cannot provide --%s", why, name)
		}
		if idx < 0 {
			return nil, errdefs.InvalidArgument("unknown flag %q", arg)
		}
		spec := specs[idx]
		switch {
		case !hasValue && spec.isBool:
			value = "true"
		case !hasValue:
			return nil, errdefs.InvalidArgument("flag --%s needs a value (--%s=…)", name, name)
		}
		if err := spec.set(value); err != nil {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, err)
		}
	}
	return nil, nil
}

// oneUUID checks that rest is exactly one pod UUID.
func oneUUID(rest []string) (string, error) {
	if len(rest) != 1 {
		return "", errdefs.InvalidArgument("want exactly one pod UUID after the flags, got %d arguments %q", len(rest), rest)
	}
	if !isUUID(rest[0]) {
		return "", errdefs.InvalidArgument("pod UUID %q is not an RFC 4122 UUID", rest[0])
	}
	return rest[0], nil
}

// isUUID reports whether s has the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}

// ParseRunArgs parses the run entrypoint's argv (without argv[0]) and
// refuses what fly cannot provide: a network other than the host's
// (--net=none or named networks) and a private IPC namespace.
func ParseRunArgs(argv []string) (RunArgs, error) {
	var a RunArgs
	var dns string
	rest, err := parseFlags(argv, []flagSpec{
		boolFlag(stage1abi.FlagDebug, &a.Debug),
		stringFlag(stage1abi.FlagNet, &a.Net),
		boolFlag(stage1abi.FlagInteractive, &a.Interactive),
		stringFlag(stage1abi.FlagMDSToken, &a.MDSToken),
		stringFlag(stage1abi.FlagLocalConfig, &a.LocalConfig),
		stringFlag(stage1abi.FlagHostname, &a.Hostname),
		stringFlag(stage1abi.FlagDNSConfMode, &dns),
		boolFlag(stage1abi.FlagDisableCapabilities, &a.DisableCapabilities),
		boolFlag(stage1abi.FlagDisablePaths, &a.DisablePaths),
		boolFlag(stage1abi.FlagDisableSeccomp, &a.DisableSeccomp),
		stringFlag(stage1abi.FlagIPC, &a.IPC),
	})
	if err != nil {
		return RunArgs{}, err
	}
	if a.UUID, err = oneUUID(rest); err != nil {
		return RunArgs{}, err
	}
	if a.DNS, err = ParseDNSConfMode(dns); err != nil {
		return RunArgs{}, err
	}
	switch a.Net {
	case "", stage1abi.NetDefault, stage1abi.NetHost:
	default:
		return RunArgs{}, errdefs.Newf(errdefs.ErrNotImplemented,
			"fly runs apps in the host's network namespace and cannot provide --%s=%s (use --%s=%s)",
			stage1abi.FlagNet, a.Net, stage1abi.FlagNet, stage1abi.NetHost)
	}
	switch a.IPC {
	case "", stage1abi.IPCAuto, stage1abi.IPCParent:
	case stage1abi.IPCPrivate:
		return RunArgs{}, errdefs.Newf(errdefs.ErrNotImplemented,
			"fly runs apps in the host's IPC namespace and cannot provide --%s=%s", stage1abi.FlagIPC, a.IPC)
	default:
		return RunArgs{}, errdefs.InvalidArgument("flag --%s: unknown value %q (want %s, %s or %s)",
			stage1abi.FlagIPC, a.IPC, stage1abi.IPCAuto, stage1abi.IPCPrivate, stage1abi.IPCParent)
	}
	return a, nil
}

// ParseEnterArgs parses the enter entrypoint's argv (without argv[0]).
func ParseEnterArgs(argv []string) (EnterArgs, error) {
	var a EnterArgs
	var pid string
	rest, err := parseFlags(argv, []flagSpec{
		stringFlag(stage1abi.FlagEnterPID, &pid),
		stringFlag(stage1abi.FlagEnterAppName, &a.AppName),
	})
	if err != nil {
		return EnterArgs{}, err
	}
	if pid == "" {
		return EnterArgs{}, errdefs.InvalidArgument("flag --%s is required", stage1abi.FlagEnterPID)
	}
	if a.PID, err = strconv.Atoi(pid); err != nil || a.PID <= 0 {
		return EnterArgs{}, errdefs.InvalidArgument("flag --%s: %q is not a process id", stage1abi.FlagEnterPID, pid)
	}
	if a.AppName == "" {
		return EnterArgs{}, errdefs.InvalidArgument("flag --%s is required", stage1abi.FlagEnterAppName)
	}
	if len(rest) == 0 {
		return EnterArgs{}, errdefs.InvalidArgument("no command to run after --")
	}
	a.Cmd = rest
	return a, nil
}

// ParseGCArgs parses the gc entrypoint's argv (without argv[0]).
func ParseGCArgs(argv []string) (GCArgs, error) {
	var a GCArgs
	rest, err := parseFlags(argv, []flagSpec{
		boolFlag(stage1abi.FlagDebug, &a.Debug),
		stringFlag(stage1abi.FlagGCLocalConfig, &a.LocalConfig),
	})
	if err != nil {
		return GCArgs{}, err
	}
	if a.UUID, err = oneUUID(rest); err != nil {
		return GCArgs{}, err
	}
	return a, nil
}

// ParseStopArgs parses the stop entrypoint's argv (without argv[0]).
func ParseStopArgs(argv []string) (StopArgs, error) {
	var a StopArgs
	rest, err := parseFlags(argv, []flagSpec{boolFlag(stage1abi.FlagStopForce, &a.Force)})
	if err != nil {
		return StopArgs{}, err
	}
	if a.UUID, err = oneUUID(rest); err != nil {
		return StopArgs{}, err
	}
	return a, nil
}

// AppArgs are the arguments of the app entrypoints (app/add, app/start,
// app/stop, app/rm; stage1abi.InterfaceVersionApps):
//
//	[--debug] [--disable-capabilities-restriction] [--disable-paths]
//	[--disable-seccomp] --uuid=UUID --app=NAME
//
// The --disable-* flags are app/add's; the others accept and ignore them.
type AppArgs struct {
	Debug               bool
	UUID                string
	App                 string
	DisableCapabilities bool
	DisablePaths        bool
	DisableSeccomp      bool
}

// ParseAppArgs parses an app entrypoint's argv (without argv[0]). The app
// name must be an AC name (lowercase letters, digits and dashes): it
// becomes a unit name and a path component.
func ParseAppArgs(argv []string) (AppArgs, error) {
	var a AppArgs
	rest, err := parseFlags(argv, []flagSpec{
		boolFlag(stage1abi.FlagDebug, &a.Debug),
		stringFlag(stage1abi.FlagAppUUID, &a.UUID),
		stringFlag(stage1abi.FlagAppName, &a.App),
		boolFlag(stage1abi.FlagDisableCapabilities, &a.DisableCapabilities),
		boolFlag(stage1abi.FlagDisablePaths, &a.DisablePaths),
		boolFlag(stage1abi.FlagDisableSeccomp, &a.DisableSeccomp),
	})
	if err != nil {
		return AppArgs{}, err
	}
	if len(rest) != 0 {
		return AppArgs{}, errdefs.InvalidArgument("unexpected arguments %q after the flags", rest)
	}
	if !isUUID(a.UUID) {
		return AppArgs{}, errdefs.InvalidArgument("flag --%s: %q is not an RFC 4122 UUID", stage1abi.FlagAppUUID, a.UUID)
	}
	if !isACName(a.App) {
		return AppArgs{}, errdefs.InvalidArgument("flag --%s: %q is not an app name (lowercase letters, digits and dashes)", stage1abi.FlagAppName, a.App)
	}
	return a, nil
}

// isACName reports whether s is an appc AC name: [a-z0-9]+ words joined
// by single dashes, at most 512 bytes.
func isACName(s string) bool {
	if s == "" || len(s) > 512 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
