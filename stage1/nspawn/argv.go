package nspawn

import (
	"strings"

	"github.com/nosecone/nscn/internal/idrange"
	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// ArgvConfig is the input of Argv.
type ArgvConfig struct {
	// Loader and LibDir are host paths of the dynamic loader and the
	// library directory of the stage1 image: systemd-nspawn runs on the
	// host with the image's libraries, never the host's.
	Loader, LibDir string
	// Nspawn is the host path of the image's systemd-nspawn binary.
	Nspawn string
	// Root is the host path of the stage1 rootfs, the container's root.
	Root     string
	UUID     string
	Hostname string // empty: the machine name
	NetMode  string // sdpod.NetHost, sdpod.NetNone or sdpod.NetCNI
	// NetNS is the pod's network namespace (networking.Setup), which
	// systemd-nspawn joins (with PrivateUsers: which run starts it in);
	// empty for the host's network. Without it, NetNone asks
	// systemd-nspawn for a namespace of its own.
	NetNS string
	// Register asks systemd-machined to register the pod and run it in a
	// scope of its own; only when the host runs systemd. Otherwise
	// systemd-nspawn keeps the cgroup run put it in (--keep-unit).
	Register bool
	Debug    bool
	// AllCapabilities lifts systemd-nspawn's capability bounding
	// (--disable-capabilities-restriction).
	AllCapabilities bool
	// Capabilities are added to systemd-nspawn's own bounding set, so
	// that an app's retain-set can hold a capability the container
	// would otherwise lack (CAP_NET_ADMIN, say); each app's own bounding
	// set is still what its policy says.
	Capabilities []string
	Binds        []sdpod.Bind
	// Console is ConsoleInteractive for --interactive on a terminal;
	// empty otherwise.
	Console string
	// PrivateUsers, when not zero, runs the container in a user
	// namespace that maps its IDs 0…Count-1 onto the host's Base…
	// (--private-users). The files must already appear owned by the
	// namespace's IDs (package idshift): systemd-nspawn is told to leave
	// ownership alone, since its own chown or idmapped mount covers the
	// root directory only, not the apps' root filesystems mounted in it.
	PrivateUsers idrange.Range
}

// ConsoleInteractive makes systemd-nspawn give the container a pseudo
// terminal as /dev/console and relay it, in raw mode, to its own stdin
// and stdout (systemd-nspawn(1), --console=interactive), passing on the
// window size.
const ConsoleInteractive = "interactive"

// MachineName is the systemd machine name (and default hostname) of a
// pod.
func MachineName(uuid string) string { return "nscn-" + uuid }

// Argv returns the command line that starts the pod: the image's loader
// running its systemd-nspawn, which boots the image's systemd as the pod's
// pid 1. Arguments after "--" go to systemd.
func Argv(c ArgvConfig) []string {
	a := []string{
		c.Loader, "--library-path", c.LibDir, c.Nspawn,
		"--quiet",
		"--boot",
		"--directory=" + c.Root,
		"--machine=" + MachineName(c.UUID),
		"--link-journal=no",
		// The pod's systemd sends READY=1 once default.target, which
		// wants every app, is reached; systemd-nspawn passes it on to
		// the NOTIFY_SOCKET run gives it, instead of sending its own
		// READY=1 as soon as the container has started.
		"--notify-ready=yes",
	}
	if c.Register {
		a = append(a, "--register=yes")
	} else {
		a = append(a, "--register=no", "--keep-unit")
	}
	if c.Hostname != "" {
		a = append(a, "--hostname="+c.Hostname)
	}
	if !c.PrivateUsers.IsZero() {
		a = append(a, "--private-users="+c.PrivateUsers.String(), "--private-users-ownership=off")
	}
	switch {
	case c.NetNS != "" && !c.PrivateUsers.IsZero():
		// In a user namespace systemd-nspawn joins the network
		// namespace from inside it, which the kernel refuses (the
		// namespace belongs to the host's user namespace): run starts
		// systemd-nspawn in it instead, and the container keeps it.
	case c.NetNS != "":
		// --private-network too: without it systemd-nspawn gives the
		// container the host's /sys, whose class/net lists the host's
		// interfaces instead of the namespace's.
		a = append(a, "--network-namespace-path="+c.NetNS, "--private-network")
	case c.NetMode == sdpod.NetNone:
		a = append(a, "--private-network")
	}
	if c.AllCapabilities {
		a = append(a, "--capability=all")
	} else if len(c.Capabilities) > 0 {
		a = append(a, "--capability="+strings.Join(c.Capabilities, ","))
	}
	// The apps' output reaches run through FIFOs; the console carries
	// only systemd's own messages, which are shown with --debug, or the
	// terminal of an interactive app.
	if c.Console == ConsoleInteractive {
		a = append(a, "--console=interactive")
	} else if c.Debug {
		a = append(a, "--console=read-only")
	} else {
		a = append(a, "--console=passive")
	}
	for _, b := range c.Binds {
		flag := "--bind="
		if b.ReadOnly {
			flag = "--bind-ro="
		}
		opt := ":norbind"
		if b.Recursive {
			opt = ":rbind"
		}
		a = append(a, flag+escapeBindPath(b.Source)+":"+escapeBindPath(b.Target)+opt)
	}
	a = append(a, "--")
	if c.Debug {
		a = append(a, "--log-level=info", "--show-status=1")
	} else {
		a = append(a, "--log-level=crit", "--show-status=0")
	}
	return append(a, "--log-color=0", "--log-target=console")
}

// Env returns the environment of systemd-nspawn. Without debug, its own
// warnings (about cgroup v1 hierarchies it cannot link, and the like) are
// silenced; errors still show.
func Env(debug, disableSeccomp bool) []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if !debug {
		env = append(env, "SYSTEMD_LOG_LEVEL=crit")
	}
	if disableSeccomp {
		env = append(env, "SYSTEMD_SECCOMP=0")
	}
	return env
}

// escapeBindPath escapes a path for systemd-nspawn's --bind: a backslash
// starts an escape and a colon separates the fields.
func escapeBindPath(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(p)
}
