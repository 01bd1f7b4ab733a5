package sdpod

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/appspec"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// App is one app of the Pod: how to start it and what to mount for it,
// in the container's paths.
type App struct {
	Spec appspec.AppSpec `json:"spec"`
	// Plan is the app's mount plan with every path as the pod sees it:
	// RootFS is /opt/stage2/NAME/rootfs, bind sources are in the pod's
	// root (the container's /sys and /dev, the stage1 rootfs, or a host
	// path systemd-nspawn binds under HostBindDir).
	Plan appmount.Plan `json:"plan"`
	// Stdin is the FIFO the app helper opens as the app's stdin (in exec
	// mode only); empty means the unit's stdin.
	Stdin string `json:"stdin,omitempty"`
	// TTY (stage1abi.AnnotationAppTTY): the app's stdin, stdout and
	// stderr are the slave of a new pseudo-terminal (of a devpts
	// instance of its own), its controlling terminal; the app helper holds the master and
	// relays it to the app's output, from Stdin, and takes the
	// terminal's size from AppResizeFIFO.
	TTY bool `json:"tty,omitempty"`
	// Journal says the app's unit writes to the pod's journal
	// (units.Config.Journal): the app helper gives the app pipes as its
	// stdout and stderr and copies them to the journal and to the
	// app's FIFOs (AppStdoutFIFO, AppStderrFIFO), which run relays.
	Journal bool `json:"journal,omitempty"`
	// Notify is set for an app that says READY=1 itself (EnableNotify):
	// the helper does not say it for the app.
	Notify bool `json:"notify,omitempty"`
	// Sockets are the app's socket-activated ports (SocketPorts), for
	// its units.
	Sockets []units.Socket `json:"sockets,omitempty"`
	// Policy is how every process of the app is confined (the app, its
	// event handlers): computed once by run with isolate.PolicyFor,
	// applied by the app helper with isolate.Exec. enter recomputes it
	// from the pod manifest and the saved Isolation options instead of
	// trusting this copy, which lives in the pod's root.
	Policy *isolate.Policy `json:"policy"`
	// Cgroups maps a cgroup hierarchy's directory name under
	// /sys/fs/cgroup ("memory", "cpu,cpuacct") to the pod path where
	// the app's own cgroup in it is bound (under CgroupBindDir). The
	// helper moves itself into each before it execs the app, and binds
	// each over the hierarchy in the app's /sys/fs/cgroup, so that the
	// app reads its own limits there.
	Cgroups map[string]string `json:"cgroups,omitempty"`
	// PID1 makes the app's own process pid 1 of its PID namespace, with
	// no init of the helper's (stage1abi.AnnotationAppPID1); its event
	// handlers keep theirs.
	PID1 bool `json:"pid1,omitempty"`
}

// Pod is what run hands the helpers inside the pod, in PodConfigFile.
type Pod struct {
	UUID  string `json:"uuid"`
	Debug bool   `json:"debug,omitempty"`
	Apps  []App  `json:"apps"`
	// CgroupUnified says the host has only the unified (cgroup v2)
	// hierarchy: the pod's systemd sets each app's limits on the app's
	// unit, and the app helper gives every app process a cgroup
	// namespace rooted at its unit's cgroup, with that cgroup mounted
	// read-only on the app's /sys/fs/cgroup.
	CgroupUnified bool `json:"cgroupUnified,omitempty"`
	// Mutable says the pod's apps change while it runs (run's
	// --mutable): an app's exit, failed or not, does not end the pod.
	Mutable bool `json:"mutable,omitempty"`
	// TimelineBase is the run's timeline base (internal/timeline), in
	// CLOCK_MONOTONIC nanoseconds, when the run prints its timeline: the
	// helpers inside the pod do not inherit run's environment.
	TimelineBase int64 `json:"timelineBase,omitempty"`
	// EndedFile, when set, is the pod path the app helper writes once
	// every app has a status (the first failure recorded too), just
	// before it asks the pod's systemd to power off: a flavor that can
	// end the pod from outside sooner than systemd's shutdown watches
	// it (stage1-kvm ends its guest).
	EndedFile string `json:"endedFile,omitempty"`
	// HostIPC says the pod runs with --ipc=parent: the app helper puts
	// every app process (the apps, their handlers) in the IPC namespace
	// bound at HostIPCNS, run's, instead of the pod's.
	HostIPC bool `json:"hostIPC,omitempty"`
	// HostPID says the pod runs with --pid=parent: the app helper has
	// run's spawner (HostPIDSocket) start each app in the host's PID
	// namespace instead of starting it in one of its own.
	HostPID bool `json:"hostPID,omitempty"`
}

// AppByName returns the pod's app called name.
func (p *Pod) AppByName(name string) (*App, error) {
	for i := range p.Apps {
		if p.Apps[i].Spec.Name == name {
			return &p.Apps[i], nil
		}
	}
	return nil, errdefs.NotFound("pod has no app %q", name)
}

// RemoveApp removes the app named name, and reports whether the pod had
// it.
func (p *Pod) RemoveApp(name string) bool {
	n := len(p.Apps)
	p.Apps = slices.DeleteFunc(p.Apps, func(a App) bool { return a.Spec.Name == name })
	return len(p.Apps) != n
}

// Names lists the pod's app names in manifest order.
func (p *Pod) Names() []string {
	out := make([]string, len(p.Apps))
	for i, a := range p.Apps {
		out[i] = a.Spec.Name
	}
	return out
}

// Bind is a host path systemd-nspawn binds into the container.
type Bind struct {
	Source    string `json:"source"` // absolute host path
	Target    string `json:"target"` // absolute path in the container
	ReadOnly  bool   `json:"readOnly,omitempty"`
	Recursive bool   `json:"recursive,omitempty"`
	// ReadOnlyTop keeps ReadOnly to the bind itself, not the mounts a
	// recursive bind copies (appmount.ReadOnlyTop).
	ReadOnlyTop bool `json:"readOnlyTop,omitempty"`
	// Optional binds are dropped when the source does not exist (the
	// host's /etc/hosts for the default DNS mode).
	Optional bool `json:"optional,omitempty"`
	// NoSymlinks refuses a source that is or passes through a symlink
	// (appc host volumes); run checks it before the pod starts.
	NoSymlinks bool `json:"noSymlinks,omitempty"`
}

// Layout is everything run computes from the pod manifest before it
// starts anything.
type Layout struct {
	Pod          Pod
	Binds        []Bind
	EmptyVolumes []appmount.EmptyVolume // host paths, created by run
	Warnings     []string
	// Reports say, per app in manifest order, what became of each
	// isolator; run shows them to the user (spec/ace.md, "Isolators").
	Reports []AppReport
}

// AppReport is the isolator report of one app.
type AppReport struct {
	App    string
	Report isolate.Report
}

// IsolateOptions are the isolate.Options of the run flags.
func IsolateOptions(a abiargs.RunArgs) isolate.Options {
	return isolate.Options{
		DisableCapabilities: a.DisableCapabilities,
		DisableSeccomp:      a.DisableSeccomp,
		DisablePaths:        a.DisablePaths,
	}
}

// CheckAddedAppOptions refuses an app added to a running mutable pod
// with an --insecure-options the pod was not started with: an added app,
// and a command entered into it, are confined with the pod's options, so
// an app cannot be confined less than the pod it joins (FailedPrecondition).
func CheckAddedAppOptions(add abiargs.AppArgs, run abiargs.RunArgs) error {
	pod := IsolateOptions(run)
	for _, d := range []struct {
		add, pod bool
		flag     string
	}{
		{add.DisableCapabilities, pod.DisableCapabilities, "capabilities"},
		{add.DisablePaths, pod.DisablePaths, "paths"},
		{add.DisableSeccomp, pod.DisableSeccomp, "seccomp"},
	} {
		if d.add && !d.pod {
			return errdefs.FailedPrecondition("--insecure-options=%s applies to the whole pod: start the sandbox with it", d.flag)
		}
	}
	return nil
}

// LayoutConfig is the input of NewLayout.
type LayoutConfig struct {
	PodDir   string // absolute host path of the pod directory
	Manifest *schema.PodManifest
	Args     RunArgs
	// MetadataURL is the apps' AC_METADATA_URL (see MetadataURL); empty
	// for none.
	MetadataURL string
	// ResolvConf and Hosts are the host paths of the files run generated
	// from the pod's network (appmount.PlanConfig), empty for none.
	ResolvConf, Hosts string
	// BindDir is the directory, in the pod, of the host paths bound
	// for the apps' mounts (HostBindDir when empty). app/add gives each
	// added app a directory of its own (AppBindDir), since the pod's
	// first binds already hold the numbers from 0.
	BindDir string
}

// AppBindDir is where app/add binds the host paths an added app's
// mounts need.
func AppBindDir(app string) string { return path.Join(HostBindDir, "app", app) }

// NewLayout validates every app of the pod and computes its process spec
// and mount plan (appspec.NewAppSpec, appmount.PlanMounts: the same rules as the
// fly flavor), then moves the plans into the container's paths. It also
// computes each app's isolation policy (isolate.PolicyFor) from its
// isolators and the --disable-* run flags; an invalid isolator fails the
// whole pod before anything starts.
func NewLayout(cfg LayoutConfig) (Layout, error) {
	if !filepath.IsAbs(cfg.PodDir) {
		return Layout{}, errdefs.InvalidArgument("pod directory %q is not absolute", cfg.PodDir)
	}
	pm := cfg.Manifest
	if len(pm.Apps) == 0 && !cfg.Args.Mutable {
		return Layout{}, errdefs.InvalidArgument("pod manifest has no app")
	}
	l := Layout{Pod: Pod{UUID: cfg.Args.UUID, Debug: cfg.Args.Debug, Mutable: cfg.Args.Mutable}}
	bindDir := cfg.BindDir
	if bindDir == "" {
		bindDir = HostBindDir
	}
	tr := translator{stage1: filepath.Join(cfg.PodDir, stage1abi.Stage1RootfsRel), binds: &l.Binds, dir: bindDir}
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		if ra.App == nil {
			return Layout{}, errdefs.InvalidArgument("app %q in the pod manifest has no app definition", ra.Name)
		}
		spec, err := appspec.NewAppSpec(ra, appspec.EnvOptions{MetadataURL: cfg.MetadataURL})
		if err != nil {
			return Layout{}, err
		}
		plan, err := appmount.PlanMounts(appmount.PlanConfig{PodDir: cfg.PodDir, Pod: pm, App: ra, DNS: cfg.Args.DNS, ResolvConf: cfg.ResolvConf, Hosts: cfg.Hosts})
		if err != nil {
			return Layout{}, err
		}
		for _, w := range plan.Warnings {
			l.Warnings = append(l.Warnings, "app "+spec.Name+": "+w)
		}
		l.EmptyVolumes = appendEmpty(l.EmptyVolumes, plan.EmptyVolumes)
		if plan, err = tr.plan(plan); err != nil {
			return Layout{}, fmt.Errorf("app %q: %w", spec.Name, err)
		}
		policy, report, err := isolate.PolicyForRuntimeApp(ra, IsolateOptions(cfg.Args.RunArgs))
		if err != nil {
			return Layout{}, fmt.Errorf("app %q: %w", spec.Name, err)
		}
		l.Reports = append(l.Reports, AppReport{App: spec.Name, Report: report})
		pid1 := false
		if v, ok := ra.Annotations.Get(stage1abi.AnnotationAppPID1); ok {
			if pid1, err = stage1abi.ParseAppPID1(v); err != nil {
				return Layout{}, errdefs.InvalidArgument("app %q: %v", spec.Name, err)
			}
		}
		l.Pod.Apps = append(l.Pod.Apps, App{Spec: spec, Plan: plan, Policy: policy, Sockets: SocketPorts(ra.App), PID1: pid1})
	}
	return l, nil
}

// appendEmpty adds the empty volumes not yet in have (apps may share one).
func appendEmpty(have, add []appmount.EmptyVolume) []appmount.EmptyVolume {
next:
	for _, v := range add {
		for _, h := range have {
			if h.Name == v.Name {
				continue next
			}
		}
		have = append(have, v)
	}
	return have
}

// translator moves a appmount.Plan computed with host paths into the pod.
type translator struct {
	stage1 string // host path of the stage1 rootfs, the pod's root
	binds  *[]Bind
	dir    string // the pod's directory of the binds
}

// inPod returns the pod's path of the host path p, if p is in the stage1
// rootfs.
func (t translator) inPod(p string) (string, bool) {
	if p == t.stage1 {
		return "/", true
	}
	rel, ok := strings.CutPrefix(p, t.stage1+"/")
	if !ok {
		return "", false
	}
	return "/" + rel, true
}

func (t translator) plan(p appmount.Plan) (appmount.Plan, error) {
	root, ok := t.inPod(p.RootFS)
	if !ok {
		return appmount.Plan{}, errdefs.InvalidArgument("app rootfs %s is not in the stage1 rootfs", p.RootFS)
	}
	out := appmount.Plan{RootFS: root, ReadOnlyRoot: p.ReadOnlyRoot}
	for _, m := range p.Mounts {
		if m.Purpose == "system" && m.Kind == appmount.KindBind && m.Target == "/dev" {
			out.Mounts = append(out.Mounts, AppDev()...)
			continue
		}
		if m.Kind == appmount.KindBind {
			m.Source = t.source(m)
		}
		out.Mounts = append(out.Mounts, m)
	}
	for _, v := range p.EmptyVolumes {
		pv, ok := t.inPod(v.Path)
		if !ok {
			return appmount.Plan{}, errdefs.InvalidArgument("empty volume %s is not in the stage1 rootfs", v.Path)
		}
		v.Path = pv
		out.EmptyVolumes = append(out.EmptyVolumes, v)
	}
	return out, nil
}

// AppDevNodes are the devices of the container's /dev that an app's /dev
// holds, those appc's OS-SPEC lists: nothing else of the host's, nor of
// what systemd-nspawn adds for the pod's own systemd (/dev/net/tun, the
// /dev/char links).
var AppDevNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

// AppDevLinks are the symbolic links the app helper makes in an app's
// /dev (prepare mode), name → target.
var AppDevLinks = map[string]string{
	"fd":     "/proc/self/fd",
	"stdin":  "/proc/self/fd/0",
	"stdout": "/proc/self/fd/1",
	"stderr": "/proc/self/fd/2",
}

// AppDev is an app's /dev, in mount order: a tmpfs of its own, the
// devices of AppDevNodes bound from the container's /dev, /dev/console
// (the pod's console, when it has one), the container's devpts and its
// ptmx (OS-SPEC: a bind of /dev/pts/ptmx), /dev/shm and /dev/mqueue,
// shared by the pod's apps as their IPC namespace is.
func AppDev() []appmount.Mount {
	ms := []appmount.Mount{{Kind: appmount.KindFS, Source: "tmpfs", Target: "/dev", FSType: "tmpfs", Data: "mode=755", Flags: appmount.NoSuid | appmount.NoExec, Purpose: "system"}}
	for _, n := range AppDevNodes {
		ms = append(ms, appmount.Mount{Kind: appmount.KindBind, Source: "/dev/" + n, Target: "/dev/" + n, Purpose: "system"})
	}
	return append(ms,
		appmount.Mount{Kind: appmount.KindBind, Source: "/dev/console", Target: "/dev/console", Fallback: true, Purpose: "system"},
		appmount.Mount{Kind: appmount.KindBind, Source: "/dev/pts", Target: "/dev/pts", Purpose: "system"},
		appmount.Mount{Kind: appmount.KindBind, Source: "/dev/pts/ptmx", Target: "/dev/ptmx", Purpose: "system"},
		appmount.Mount{Kind: appmount.KindBind, Source: "/dev/shm", Target: "/dev/shm", Flags: appmount.NoSuid | appmount.NoDev, Purpose: "system"},
		appmount.Mount{Kind: appmount.KindBind, Source: "/dev/mqueue", Target: "/dev/mqueue", Fallback: true, Purpose: "system"},
	)
}

// source returns the pod's path for a bind source: the container's own
// /sys and /dev (systemd-nspawn sets them up), the stage1 rootfs as is,
// and any other host path through a systemd-nspawn bind.
func (t translator) source(m appmount.Mount) string {
	if m.Purpose == "system" {
		return m.Source
	}
	if p, ok := t.inPod(m.Source); ok {
		return p
	}
	b := Bind{
		Source:      m.Source,
		ReadOnly:    m.Flags&appmount.ReadOnly != 0,
		ReadOnlyTop: m.Flags&appmount.ReadOnlyTop != 0,
		Recursive:   m.Flags&appmount.Recursive != 0,
		Optional:    m.Fallback,
		NoSymlinks:  m.SourceNoSymlinks,
	}
	for _, have := range *t.binds {
		if have.Source == b.Source && have.ReadOnly == b.ReadOnly && have.ReadOnlyTop == b.ReadOnlyTop && have.Recursive == b.Recursive && have.Optional == b.Optional && have.NoSymlinks == b.NoSymlinks {
			return have.Target
		}
	}
	b.Target = path.Join(t.dir, strconv.Itoa(len(*t.binds)))
	*t.binds = append(*t.binds, b)
	return b.Target
}

// LoadPod reads the Pod that run wrote.
func LoadPod(p string) (*Pod, error) {
	data, err := os.ReadFile(p) //nolint:gosec // G304: a file in the pod directory (stage1 ABI)
	if err != nil {
		return nil, fmt.Errorf("read pod config: %w", err)
	}
	var pod Pod
	if err := json.Unmarshal(data, &pod); err != nil {
		return nil, errdefs.Newf(errdefs.ErrInvalidArgument, "parse pod config %s: %w", p, err)
	}
	return &pod, nil
}

// Summary is the line run prints on stderr for an app whose image or
// flags asked for isolators: which it enforced (or modified) and which it
// ignored, with why, as the appc spec requires an executor to tell
// (spec/ace.md, "Isolators"). nscn's own defaults are left out (they are
// logged with --debug); an app with nothing else gets "".
func (r AppReport) Summary() string {
	var enforced, ignored []string
	for _, e := range r.Report {
		switch e.Status {
		case isolate.Enforced:
			enforced = append(enforced, e.Name)
		case isolate.Modified:
			enforced = append(enforced, e.Name+" (modified: "+e.Detail+")")
		case isolate.Ignored:
			ignored = append(ignored, e.Name+" ("+e.Detail+")")
		}
	}
	if len(enforced) == 0 && len(ignored) == 0 {
		return ""
	}
	s := "app " + r.App + ": isolators"
	if len(enforced) > 0 {
		s += " enforced: " + strings.Join(enforced, ", ")
		if len(ignored) > 0 {
			s += ";"
		}
	}
	if len(ignored) > 0 {
		s += " ignored: " + strings.Join(ignored, ", ")
	}
	return s
}

// Capabilities are the capabilities of any app's bounding set, for
// ArgvConfig.Capabilities.
func (p *Pod) Capabilities() []string {
	var all caps.Set
	for _, a := range p.Apps {
		if a.Policy != nil && a.Policy.Caps != nil {
			all |= a.Policy.Caps.Bounding
		}
	}
	return all.Names()
}

// RuntimeApp returns the app called name of a pod manifest, with its
// effective app definition (stage0 merges the image's app with the
// user's overrides). Unlike fly's lookup, it takes pods of any number of
// apps.
func RuntimeApp(pm *schema.PodManifest, name string) (*schema.RuntimeApp, error) {
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		if ra.Name.String() != name {
			continue
		}
		if ra.App == nil {
			return nil, errdefs.InvalidArgument("app %q in the pod manifest has no app definition", ra.Name)
		}
		return ra, nil
	}
	return nil, errdefs.NotFound("pod has no app %q", name)
}

// SocketPorts are the ports of app that appc marks socketActivated:
// systemd listens on them in the pod and passes them to the app
// (units.App.Sockets).
func SocketPorts(app *types.App) []units.Socket {
	var out []units.Socket
	for _, p := range app.Ports {
		if p.SocketActivated {
			out = append(out, units.Socket{Name: p.Name.String(), Protocol: p.Protocol, Port: p.Port, Count: p.Count})
		}
	}
	return out
}
