package sdpod

import (
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/networking/netflag"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Net modes of the pod.
const (
	NetHost = "host" // the host's network namespace
	NetNone = "none" // a private namespace with loopback only
	// NetCNI is a namespace of the pod's own attached to CNI networks
	// (networking.Setup), default included.
	NetCNI = "cni"
)

// RunArgs are the run entrypoint's arguments. The flags every flavor
// parses alike come from abiargs.ParseRunArgs; Net, IPC and Interactive are
// this flavor's own.
type RunArgs struct {
	abiargs.RunArgs
	// NetMode is NetHost, NetNone or NetCNI; Nets is the parsed --net
	// (an absent or empty --net is the default network).
	NetMode string
	Nets    netflag.Nets
	// MDSPort is --mds-port (interface version 7): the metadata
	// service's TCP port; 0 when not given (see MetadataURL).
	MDSPort int
	// PrivateUsers is --private-users (interface version 10): the host
	// IDs the pod's user namespace maps its own onto; zero: none.
	PrivateUsers idrange.Range
	// Mutable is --mutable (interface version 11): the pod's apps
	// change while it runs (the app entrypoints); it may start with
	// none and does not end when its last app exits.
	Mutable bool
	// HostPID is --pid=parent (interface version 15): every app's
	// process in run's PID namespace, started there by run's spawner
	// (HostPIDSocket) on its helper's request.
	HostPID bool
}

// ParseRunArgs parses the run entrypoint's argv (without argv[0]).
//
// --net, --ipc and --interactive are taken out and checked here
// (--ipc=parent puts the apps in run's IPC namespace, HostIPCNS, and is
// refused with --private-users; whether a named network exists is
// checked by networking.Setup). The rest goes to
// abiargs.ParseRunArgs, the shared parser of the
// stage1 interface's run argv.
func ParseRunArgs(argv []string) (RunArgs, error) {
	var net, ipc, pid string
	interactive, mutable := false, false
	mdsPort := 0
	var users idrange.Range
	rest := make([]string, 0, len(argv))
	flags := true
	for _, a := range argv {
		if !flags || a == "--" || !strings.HasPrefix(a, "--") {
			flags = false
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		switch name {
		case stage1abi.FlagNet:
			if !hasValue {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s needs a value (--%s=…)", name, name)
			}
			net = value
		case stage1abi.FlagIPC:
			if !hasValue {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s needs a value (--%s=…)", name, name)
			}
			ipc = value
		case stage1abi.FlagPID:
			if !hasValue {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s needs a value (--%s=…)", name, name)
			}
			pid = value
		case stage1abi.FlagMDSPort:
			p, err := strconv.Atoi(value)
			if !hasValue || err != nil || p < 1 || p > 65535 {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s needs a TCP port (--%s=1…65535), not %q", name, name, value)
			}
			mdsPort = p
		case stage1abi.FlagPrivateUsers:
			r, err := idrange.Parse(value)
			if !hasValue || err != nil {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s needs an ID range (--%s=BASE:COUNT), not %q", name, name, value)
			}
			users = r
		case stage1abi.FlagInteractive:
			b := true
			if hasValue {
				var err error
				if b, err = strconv.ParseBool(value); err != nil {
					return RunArgs{}, errdefs.InvalidArgument("flag --%s: value %q is not a boolean", name, value)
				}
			}
			interactive = b
		case stage1abi.FlagMutable:
			if hasValue {
				return RunArgs{}, errdefs.InvalidArgument("flag --%s takes no value", name)
			}
			mutable = true
		default:
			rest = append(rest, a)
		}
	}
	fa, err := abiargs.ParseRunArgs(rest)
	if err != nil {
		return RunArgs{}, err
	}
	a := RunArgs{RunArgs: fa, MDSPort: mdsPort, PrivateUsers: users, Mutable: mutable}
	a.Net, a.IPC, a.Interactive = net, ipc, interactive
	if err := checkMDSToken(a.MDSToken); err != nil {
		return RunArgs{}, err
	}
	if a.Nets, err = netflag.Parse(net); err != nil {
		return RunArgs{}, err
	}
	switch {
	case a.Nets.Host():
		a.NetMode = NetHost
	case a.Nets.None():
		a.NetMode = NetNone
	default:
		a.NetMode = NetCNI
	}
	switch ipc {
	case "", stage1abi.IPCAuto, stage1abi.IPCPrivate:
	case stage1abi.IPCParent:
		// The app helper joins run's IPC namespace (HostIPCNS), which
		// takes CAP_SYS_ADMIN in the host's user namespace: the pod's
		// root has none in a user namespace of its own.
		if !users.IsZero() {
			return RunArgs{}, errdefs.Newf(errdefs.ErrNotImplemented,
				"--%s=%s with --%s: the apps of a pod in a user namespace of its own cannot join the host's IPC namespace", stage1abi.FlagIPC, ipc, stage1abi.FlagPrivateUsers)
		}
	default:
		return RunArgs{}, errdefs.InvalidArgument("flag --%s: unknown value %q (want %s, %s or %s)",
			stage1abi.FlagIPC, ipc, stage1abi.IPCAuto, stage1abi.IPCPrivate, stage1abi.IPCParent)
	}
	switch pid {
	case "", stage1abi.PIDAuto, stage1abi.PIDPrivate:
	case stage1abi.PIDParent:
		// The spawner's process joins the helper's namespaces and mounts
		// a procfs of the host's PID namespace: neither is open to the
		// pod's root in a user namespace of its own.
		if !users.IsZero() {
			return RunArgs{}, errdefs.Newf(errdefs.ErrNotImplemented,
				"--%s=%s with --%s: the apps of a pod in a user namespace of its own cannot be in the host's PID namespace", stage1abi.FlagPID, pid, stage1abi.FlagPrivateUsers)
		}
		a.HostPID = true
	default:
		return RunArgs{}, errdefs.InvalidArgument("flag --%s: unknown value %q (want %s, %s or %s)",
			stage1abi.FlagPID, pid, stage1abi.PIDAuto, stage1abi.PIDPrivate, stage1abi.PIDParent)
	}
	return a, nil
}
