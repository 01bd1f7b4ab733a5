package cli

import (
	"strings"
)

// Run and prepare take rkt's positional syntax, which urfave/cli cannot
// express: flags before the first image are pod flags or defaults for every
// app; flags after an image apply to that image; "--" starts the image's
// arguments and "---" ends them and the app:
//
//	nscn run [FLAGS] IMAGE [APPFLAGS] [-- ARGS…] [--- IMAGE [APPFLAGS] [-- ARGS…]]…

// runFlagSpec describes one flag of run/prepare.
type runFlagSpec struct {
	boolean bool // takes no value (--x, --x=true, --x=false)
	perApp  bool // may follow an image
	usage   string
	multi   bool // may repeat; values accumulate
	// only names the one command that takes the flag ("run" or
	// "prepare"); "" for both. prepare refuses the flags that apply when
	// the pod runs: run-prepared takes them.
	only string
}

// Commands of runFlagSpec.only.
const (
	onlyRun     = "run"
	onlyPrepare = "prepare"
)

var runFlagSpecs = map[string]runFlagSpec{
	// Per-app (or, before the first image, for every app).
	"exec":               {perApp: true, usage: "the executable to run instead of the image's exec"},
	"name":               {perApp: true, usage: "the app's name in the pod (default: the image name's last part)"},
	"user":               {perApp: true, usage: "user to run the app as: a UID or a name from the image's /etc/passwd"},
	"group":              {perApp: true, usage: "group to run the app as: a GID or a name from the image's /etc/group"},
	"supplementary-gids": {perApp: true, usage: "comma-separated supplementary group IDs"},
	"working-dir":        {perApp: true, usage: "the app's working directory (absolute)"},
	"mount":              {perApp: true, multi: true, usage: "mount a volume: volume=NAME,target=PATH"},
	"readonly-rootfs":    {perApp: true, boolean: true, usage: "mount the app's root filesystem read-only"},
	"pid1":               {perApp: true, boolean: true, usage: "make the app pid 1 of its PID namespace, with no init before it (stage1 interface 14; it then gets no signal it has no handler for)"},
	"set-env":            {perApp: true, multi: true, usage: "set an environment variable: NAME=VALUE"},
	"environment":        {perApp: true, multi: true, usage: "set an environment variable: NAME=VALUE (rkt's name for --set-env)"},
	"set-env-file":       {perApp: true, multi: true, usage: "read NAME=VALUE lines from a file"},
	"signature":          {perApp: true, usage: "the image's detached signature, if not IMAGE.asc"},
	"memory":             {perApp: true, usage: "memory limit, e.g. 64Mi (resource/memory)"},
	"cpu":                {perApp: true, usage: "CPU limit, e.g. 500m (resource/cpu)"},
	"cpu-shares":         {perApp: true, usage: "relative CPU weight, 2 to 262144 (os/linux/cpu-shares)"},
	"caps-retain":        {perApp: true, usage: "capabilities to keep, e.g. CAP_NET_BIND_SERVICE,CAP_CHOWN (os/linux/capabilities-retain-set)"},
	"caps-remove":        {perApp: true, usage: "capabilities to drop, e.g. CAP_MKNOD (os/linux/capabilities-remove-set)"},
	"seccomp":            {perApp: true, usage: "syscall filter: mode=retain|remove[,errno=ENAME],SYSCALL,... (os/linux/seccomp-*-set)"},
	"oom-score-adj":      {perApp: true, usage: "OOM killer score adjustment, -1000 to 1000 (os/linux/oom-score-adj)"},
	// Pod-wide.
	"volume":          {multi: true, usage: "define a volume: NAME,kind=host|empty,source=PATH,readOnly=BOOL"},
	"pod-manifest":    {usage: "use this pod manifest instead of generating one (no images may be given)"},
	"inherit-env":     {boolean: true, usage: "give apps the environment of nscn (below the image's and --set-env)"},
	"hostname":        {only: onlyRun, usage: "the pod's hostname (the stage1 decides the default; fly keeps the host's)"},
	"interactive":     {boolean: true, only: onlyRun, usage: "attach the terminal to the app (one app only)"},
	"uuid-file-save":  {usage: "write the pod's UUID to this file"},
	"net":             {only: onlyRun, usage: "networks to join: default, host, none or names (flavor-dependent)"},
	"pull-policy":     {usage: "when to fetch images from the network: new, update or never"},
	"os":              {usage: "the OS of the image to pick from an OCI image index (default linux)"},
	"arch":            {usage: "the architecture (and variant: arm/v7) to pick from an OCI image index (default amd64)"},
	"stage1-from-dir": {usage: "a stage1 image file name from the stage1 image directories"},
	"stage1-path":     {usage: "path to a stage1 image"},
	"stage1-url":      {usage: "URL of a stage1 image"},
	"stage1-name":     {usage: "name of a stage1 image in the store"},
	"stage1-hash":     {usage: "ID of a stage1 image in the store"},
	"dns-conf-mode":   {only: onlyRun, usage: "resolv=MODE,hosts=MODE for the stage1 (default, host, none); not with the flags below"},
	"dns":             {multi: true, only: onlyRun, usage: "the apps' nameserver (repeatable), or host (the host's resolv.conf) or none (the image's)"},
	"dns-search":      {multi: true, only: onlyRun, usage: "a search domain of the apps' resolv.conf (repeatable)"},
	"dns-opt":         {multi: true, only: onlyRun, usage: "an option of the apps' resolv.conf, e.g. ndots:2 (repeatable)"},
	"dns-domain":      {only: onlyRun, usage: "the local domain of the apps' resolv.conf"},
	"hosts-entry":     {multi: true, only: onlyRun, usage: "an /etc/hosts line for the apps, IP=NAME[,NAME] (repeatable), or host (the host's file)"},
	"port":            {multi: true, usage: "forward a host port to an image's named port: NAME:[HOSTIP:]HOSTPORT (repeatable)"},
	"publish":         {multi: true, usage: "forward a host port to a port of the pod, whichever app listens there: [HOSTIP:]HOSTPORT:PODPORT[/tcp|udp|sctp] (repeatable)"},
	"mds-register":    {boolean: true, only: onlyRun, usage: "register the pod with the metadata service (default: when it is running)"},
	"user-annotation": {multi: true, usage: "add an annotation to the pod manifest: NAME=VALUE (userAnnotations, as rkt)"},
	"user-label":      {multi: true, usage: "add a label to the pod manifest: NAME=VALUE (userLabels, as rkt)"},
	"ipc":             {only: onlyRun, usage: "the pod's IPC namespace: auto, private or parent (flavor-dependent)"},
	"pid":             {only: onlyRun, usage: "the apps' PID namespace: auto, private or parent (the host's: stage1-nspawn, stage1 interface 15)"},
	"no-overlay":      {boolean: true, usage: "copy the images' root filesystems into the pod instead of mounting overlayfs on them"},
	"private-users":   {boolean: true, usage: "run the pod in a user namespace: its root is an unprivileged host ID of a 65536-ID range of its own (stage1-nspawn; security.md)"},
	"quiet":           {boolean: true, only: onlyPrepare, usage: "print nothing but the pod's UUID on stdout (the messages of stderr are left out)"},
	"mds-socket":      {only: onlyRun, usage: "the metadata service's registration socket (default /run/nscn/metadata-svc.sock)"},
}

// appArgs is one app on the command line.
type appArgs struct {
	image string
	flags map[string][]string
	args  []string
	// argsGiven is true when "--" was given, even with no arguments.
	argsGiven bool
}

// runArgs is a parsed run/prepare command line.
type runArgs struct {
	pod      map[string][]string // pod flags and per-app defaults
	apps     []appArgs
	wantHelp bool
	// sandbox is nscn app sandbox: a mutable pod with no app yet.
	sandbox bool
}

// get returns the last value of a flag for an app, falling back to the
// pod-wide default.
func (r *runArgs) get(a *appArgs, name string) string {
	if a != nil {
		if v := a.flags[name]; len(v) > 0 {
			return v[len(v)-1]
		}
	}
	if v := r.pod[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// all returns the pod-wide values of a repeatable flag followed by the app's.
func (r *runArgs) all(a *appArgs, name string) []string {
	out := append([]string(nil), r.pod[name]...)
	if a != nil {
		out = append(out, a.flags[name]...)
	}
	return out
}

func (r *runArgs) flag(name string) string { return r.get(nil, name) }

func (r *runArgs) boolean(a *appArgs, name string) bool {
	v := r.get(a, name)
	return v == "true"
}

// parseRunArgs parses the positional syntax of command cmd (run or
// prepare; "" accepts the flags of both).
func parseRunArgs(args []string, cmd string) (*runArgs, error) {
	r := &runArgs{pod: map[string][]string{}}
	var cur *appArgs
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			r.wantHelp = true
			return r, nil
		case a == "---":
			if cur == nil {
				return nil, usageErrorf("--- must follow an image")
			}
			cur = nil
		case a == "--":
			if cur == nil {
				return nil, usageErrorf("-- must follow an image (its arguments come after it)")
			}
			cur.argsGiven = true
			for i++; i < len(args) && args[i] != "---"; i++ {
				cur.args = append(cur.args, args[i])
			}
			cur = nil // "---" or the end closes the app
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			spec, ok := runFlagSpecs[name]
			if !ok {
				return nil, usageErrorf("unknown flag --%s", name)
			}
			if cmd != "" && spec.only != "" && spec.only != cmd {
				if spec.only == onlyRun && cmd == onlyPrepare {
					return nil, usageErrorf("--%s applies when the pod runs: give it to run-prepared, not prepare", name)
				}
				return nil, usageErrorf("--%s is a flag of nscn %s, not of nscn %s", name, spec.only, cmd)
			}
			if cur != nil && !spec.perApp {
				return nil, usageErrorf("--%s applies to the whole pod; put it before the first image", name)
			}
			switch {
			case spec.boolean && !hasVal:
				val = "true"
			case spec.boolean && val != "true" && val != "false":
				return nil, usageErrorf("--%s takes true or false, not %q", name, val)
			case !hasVal:
				if i+1 >= len(args) {
					return nil, usageErrorf("--%s needs a value", name)
				}
				i++
				val = args[i]
			}
			// An environment variable's value is the app's business; no
			// other value nscn takes has a control character.
			if name != "set-env" && name != "environment" {
				if err := checkNoControl(name, val); err != nil {
					return nil, err
				}
			}
			target := r.pod
			if cur != nil {
				target = cur.flags
			}
			if spec.multi {
				target[name] = append(target[name], val)
			} else {
				target[name] = []string{val}
			}
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, usageErrorf("unknown flag %s (flags are spelled --name)", a)
		default:
			r.apps = append(r.apps, appArgs{image: a, flags: map[string][]string{}})
			cur = &r.apps[len(r.apps)-1]
		}
	}
	return r, nil
}
