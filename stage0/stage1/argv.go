package stage1

import (
	"strconv"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// RunFlags are the run entrypoint's arguments.
type RunFlags struct {
	Debug       bool
	Net         string
	Interactive bool
	MDSToken    string
	// MDSPort is the metadata service's TCP port, passed with MDSToken
	// to a stage1 of interface version 7 or later; an older stage1
	// assumes stage1abi.DefaultMDSPort.
	MDSPort             int
	LocalConfig         string
	Hostname            string
	DNSConfMode         string
	DisableCapabilities bool
	DisablePaths        bool
	DisableSeccomp      bool
	IPC                 string
	// PID is run's --pid (stage1abi.PIDParent: the host's PID namespace),
	// for a stage1 of stage1abi.InterfaceVersionPID or later.
	PID string
	// PrivateUsers is the pod's ID range (BASE:COUNT) for a stage1 of
	// interface version 10 or later; empty: no user namespace.
	PrivateUsers string
	// Mutable starts a pod whose apps change while it runs (nscn app
	// sandbox): interface version stage1abi.InterfaceVersionApps.
	Mutable          bool
	UUID             string
	InterfaceVersion int
}

// RunArgs builds the run entrypoint's argv (without argv[0]). Arguments a
// stage1 of an older interface version would not understand are left out,
// and asking for them is an error rather than silently lost.
func RunArgs(f RunFlags) ([]string, error) {
	var a []string
	need := func(v int, flag string) error {
		if f.InterfaceVersion < v {
			return errdefs.FailedPrecondition("the stage1 speaks interface version %d, which has no --%s (needs %d)", f.InterfaceVersion, flag, v)
		}
		return nil
	}
	if f.Debug {
		a = append(a, "--"+stage1abi.FlagDebug)
	}
	net := f.Net
	if net == "" {
		net = stage1abi.NetDefault
	}
	a = append(a, "--"+stage1abi.FlagNet+"="+net)
	if f.Interactive {
		a = append(a, "--"+stage1abi.FlagInteractive)
	}
	if f.MDSToken != "" {
		// From interface version 9 the token is in the pod directory
		// (stage1abi.MDSTokenFile), never in argv.
		if f.InterfaceVersion < stage1abi.InterfaceVersionMDSTokenFile {
			a = append(a, "--"+stage1abi.FlagMDSToken+"="+f.MDSToken)
		}
		if f.MDSPort != 0 && f.InterfaceVersion >= stage1abi.InterfaceVersionMDSPort {
			a = append(a, "--"+stage1abi.FlagMDSPort+"="+strconv.Itoa(f.MDSPort))
		}
	}
	if f.LocalConfig != "" {
		a = append(a, "--"+stage1abi.FlagLocalConfig+"="+f.LocalConfig)
	}
	if f.Hostname != "" {
		if err := need(stage1abi.InterfaceVersionHostname, stage1abi.FlagHostname); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagHostname+"="+f.Hostname)
	}
	if f.DNSConfMode != "" {
		if err := need(stage1abi.InterfaceVersionDNSConf, stage1abi.FlagDNSConfMode); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagDNSConfMode+"="+f.DNSConfMode)
	}
	for _, d := range []struct {
		on   bool
		flag string
	}{
		{f.DisableCapabilities, stage1abi.FlagDisableCapabilities},
		{f.DisablePaths, stage1abi.FlagDisablePaths},
		{f.DisableSeccomp, stage1abi.FlagDisableSeccomp},
	} {
		if !d.on {
			continue
		}
		if err := need(stage1abi.InterfaceVersionDisable, d.flag); err != nil {
			return nil, err
		}
		a = append(a, "--"+d.flag)
	}
	if f.IPC != "" {
		if err := need(stage1abi.InterfaceVersionIPC, stage1abi.FlagIPC); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagIPC+"="+f.IPC)
	}
	if f.PID != "" {
		if err := need(stage1abi.InterfaceVersionPID, stage1abi.FlagPID); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagPID+"="+f.PID)
	}
	if f.PrivateUsers != "" {
		if err := need(stage1abi.InterfaceVersionPrivateUsers, stage1abi.FlagPrivateUsers); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagPrivateUsers+"="+f.PrivateUsers)
	}
	if f.Mutable {
		if err := need(stage1abi.InterfaceVersionApps, stage1abi.FlagMutable); err != nil {
			return nil, err
		}
		a = append(a, "--"+stage1abi.FlagMutable)
	}
	if f.UUID == "" {
		return nil, errdefs.InvalidArgument("run entrypoint: no pod UUID")
	}
	return append(a, f.UUID), nil
}

// AppFlags are the arguments of the app entrypoints (app/add, app/start,
// app/stop, app/rm). The --disable-* flags are app/add's only.
type AppFlags struct {
	Debug               bool
	UUID                string
	App                 string
	DisableCapabilities bool
	DisablePaths        bool
	DisableSeccomp      bool
}

// AppArgs builds an app entrypoint's argv (without argv[0]):
//
//	[--debug] [--disable-…] --uuid=UUID --app=NAME
func AppArgs(f AppFlags) ([]string, error) {
	if f.UUID == "" {
		return nil, errdefs.InvalidArgument("app entrypoint: no pod UUID")
	}
	if f.App == "" {
		return nil, errdefs.InvalidArgument("app entrypoint: no app name")
	}
	var a []string
	if f.Debug {
		a = append(a, "--"+stage1abi.FlagDebug)
	}
	for _, d := range []struct {
		on   bool
		flag string
	}{
		{f.DisableCapabilities, stage1abi.FlagDisableCapabilities},
		{f.DisablePaths, stage1abi.FlagDisablePaths},
		{f.DisableSeccomp, stage1abi.FlagDisableSeccomp},
	} {
		if d.on {
			a = append(a, "--"+d.flag)
		}
	}
	return append(a, "--"+stage1abi.FlagAppUUID+"="+f.UUID, "--"+stage1abi.FlagAppName+"="+f.App), nil
}

// CheckDNSConfMode validates a --dns-conf-mode value: comma-separated
// resolv=MODE and hosts=MODE, MODE one of default, host or none. The stage0
// mode is refused: this stage0 does not write the files it would expose.
func CheckDNSConfMode(s string) error {
	if s == "" {
		return nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k != stage1abi.DNSConfResolv && k != stage1abi.DNSConfHosts {
			return errdefs.InvalidArgument("--dns-conf-mode %q: unknown key %q (want resolv or hosts)", s, k)
		}
		switch v {
		case stage1abi.DNSModeDefault, stage1abi.DNSModeHost, stage1abi.DNSModeNone:
		default:
			return errdefs.InvalidArgument("--dns-conf-mode %q: mode %q is not supported (want default, host or none)", s, v)
		}
	}
	return nil
}
