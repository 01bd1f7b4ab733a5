package isolate

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/isolate/caps"
	"github.com/nosecone/nscn/internal/isolate/cgroup"
	"github.com/nosecone/nscn/internal/isolate/seccomp"
)

// Options are the run flags that turn restrictions off (stage1abi's
// FlagDisableCapabilities, FlagDisableSeccomp and FlagDisablePaths).
// enter and app exec pass the options the pod was started with.
type Options struct {
	// DisableCapabilities keeps the capabilities the app would have
	// without nscn: every one for a root app, none for another user.
	DisableCapabilities bool
	// DisableSeccomp installs no seccomp filter.
	DisableSeccomp bool
	// DisablePaths leaves /proc and /sys paths unrestricted.
	DisablePaths bool
}

// Policy is how one app process is confined. It is plain data and
// encodes to JSON, so that a stage1 can compute it once and hand it to
// the process that applies it. The zero value confines nothing.
type Policy struct {
	// Caps are the capability sets the app starts with; nil leaves those
	// of the executing process (for the executor, root: every one).
	Caps *caps.Sets `json:"caps,omitempty"`
	// NoNewPrivs sets no_new_privs: setuid bits and file capabilities
	// no longer grant anything.
	NoNewPrivs bool `json:"noNewPrivs,omitempty"`
	// Seccomp is the syscall filter; nil installs none.
	Seccomp *seccomp.Filter `json:"seccomp,omitempty"`
	// OOMScoreAdj, when set, is written to /proc/self/oom_score_adj.
	OOMScoreAdj *int `json:"oomScoreAdj,omitempty"`
	// Cgroup are the limits of the app's cgroup; the stage1 creates it
	// with package cgroup. Zero means no cgroup is needed.
	Cgroup cgroup.Limits `json:"cgroup,omitzero"`
	// Paths are the /proc and /sys paths the stage1 makes read-only or
	// hides when it mounts the app's filesystem.
	Paths Paths `json:"paths,omitzero"`
}

// Paths lists restricted paths inside the app's root. The stage1 applies
// them as part of its mount plan, after /proc and /sys are mounted:
// ReadOnly with a read-only bind of the path onto itself, Masked with a
// bind of /dev/null over a file or an empty read-only tmpfs over a
// directory. A path that does not exist in the app's root is skipped.
type Paths struct {
	ReadOnly []string `json:"readOnly,omitempty"`
	Masked   []string `json:"masked,omitempty"`
}

// DefaultPaths returns the paths restricted unless --disable-paths is
// given. Documentation/isolators.md says why each is there.
func DefaultPaths() Paths {
	return Paths{
		ReadOnly: []string{
			"/proc/bus",           // device configuration space (PCI, USB)
			"/proc/fs",            // filesystem driver tunables
			"/proc/irq",           // interrupt routing
			"/proc/sys",           // sysctls; most are host-wide
			"/proc/sysrq-trigger", // reboot, crash or kill the host
			"/sys",                // host devices, drivers, kernel settings
		},
		Masked: []string{
			"/proc/acpi",        // ACPI tables and power events
			"/proc/kcore",       // an image of physical memory
			"/proc/sched_debug", // every task on the host, kernel addresses
			"/proc/scsi",        // writes rescan or remove SCSI devices
			"/proc/timer_list",  // host timers with kernel addresses
			"/sys/firmware",     // firmware tables, EFI variables
		},
	}
}

// Status says what became of an isolator.
type Status string

// The statuses, as the appc spec names them ("ignored, enforced or
// modified"), plus Default for nscn's own restrictions.
const (
	// Enforced: applied as asked.
	Enforced Status = "enforced"
	// Modified: applied with a change that Detail explains.
	Modified Status = "modified"
	// Ignored: not applied; Detail says why.
	Ignored Status = "ignored"
	// Default: a restriction nscn applies because the image asked for
	// nothing in that area.
	Default Status = "default"
)

// Entry is one line of a Report.
type Entry struct {
	// Name is the isolator's name, such as "os/linux/no-new-privileges",
	// or for a Default entry what it covers ("capabilities").
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

func (e Entry) String() string { return fmt.Sprintf("%s %s: %s", e.Status, e.Name, e.Detail) }

// Report tells the user what became of each of an app's isolators and of
// nscn's defaults, in the order of the image manifest, defaults last. The
// appc spec requires an executor to make this available (spec/ace.md,
// "Isolators").
type Report []Entry

// Log writes the report to log: ignored and modified entries as
// warnings, so that a user sees them at the default level, the others at
// debug level.
func (r Report) Log(ctx context.Context, log *slog.Logger) {
	for _, e := range r {
		level := slog.LevelDebug
		if e.Status == Ignored || e.Status == Modified {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "isolator "+string(e.Status), "isolator", e.Name, "detail", e.Detail)
	}
}

// PolicyFor computes the policy of app, the same for every process
// started in it: the app itself (run), a command entered into it (enter)
// or an extra process (app exec). It validates all the isolators before
// returning; an isolator that is invalid or contradicts another is an
// errdefs.ErrInvalidArgument error, and nothing should run. The Report
// lists what is enforced and what is ignored, and why.
//
// Resource limits are enforced only if the stage1 creates the cgroup;
// one that cannot should add an Ignored entry for them.
func PolicyFor(app *types.App, opts Options) (*Policy, Report, error) {
	if app == nil {
		return nil, nil, errdefs.InvalidArgument("no app to compute a policy for")
	}
	b := &builder{opts: opts, p: &Policy{}}
	// Last one wins for a repeated isolator; the earlier ones are
	// reported as ignored.
	last := map[types.ACIdentifier]int{}
	for i, iso := range app.Isolators {
		last[iso.Name] = i
	}
	for _, pair := range [][2]types.ACIdentifier{
		{types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName},
		{types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName},
	} {
		_, a := last[pair[0]]
		_, c := last[pair[1]]
		if a && c {
			return nil, nil, errdefs.InvalidArgument("isolators %s and %s cannot be used together", pair[0], pair[1])
		}
	}
	for i := range app.Isolators {
		iso := &app.Isolators[i]
		if last[iso.Name] != i {
			b.add(iso.Name.String(), Ignored, "overridden by a later isolator of the same name")
			continue
		}
		if err := b.isolator(iso); err != nil {
			return nil, nil, fmt.Errorf("isolator %s: %w", iso.Name, err)
		}
	}
	if err := b.defaults(); err != nil {
		return nil, nil, err
	}
	return b.p, b.r, nil
}

type builder struct {
	opts Options
	p    *Policy
	r    Report
	// what the image set, so that defaults fill in the rest
	capsSet, seccompSet bool
}

func (b *builder) add(name string, s Status, format string, args ...any) {
	b.r = append(b.r, Entry{Name: name, Status: s, Detail: fmt.Sprintf(format, args...)})
}

func (b *builder) isolator(iso *types.Isolator) error {
	name := iso.Name.String()
	switch v := iso.Value().(type) {
	case *types.LinuxCapabilitiesRetainSet:
		return b.capabilities(name, v.Set(), true)
	case *types.LinuxCapabilitiesRevokeSet:
		return b.capabilities(name, v.Set(), false)
	case *types.LinuxNoNewPrivileges:
		b.p.NoNewPrivs = bool(*v)
		b.add(name, Enforced, "no_new_privs %s", map[bool]string{true: "set", false: "not set"}[b.p.NoNewPrivs])
	case *types.LinuxSeccompRemoveSet:
		return b.seccomp(name, seccomp.Remove, v.Set(), v.Errno())
	case *types.LinuxSeccompRetainSet:
		return b.seccomp(name, seccomp.Retain, v.Set(), v.Errno())
	case *types.LinuxOOMScoreAdj:
		if err := v.AssertValid(); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		n := int(*v)
		b.p.OOMScoreAdj = &n
		b.add(name, Enforced, "oom_score_adj %d", n)
	case *types.LinuxCPUShares:
		if err := v.AssertValid(); err != nil {
			return errdefs.With(errdefs.ErrInvalidArgument, err)
		}
		b.p.Cgroup.CPUShares = uint64(*v)                                                                        //nolint:gosec // G115: AssertValid bounds it to 2..262144
		b.add(name, Enforced, "cpu.shares %d (cgroup v2: cpu.weight %d)", *v, cgroup.SharesToWeight(uint64(*v))) //nolint:gosec // G115: AssertValid bounds it to 2..262144
	case *types.ResourceMemory:
		return b.memory(name, v)
	case *types.ResourceCPU:
		return b.cpu(name, v)
	case *types.LinuxSELinuxContext:
		b.add(name, Ignored, "nscn does not label processes with SELinux contexts")
	case *types.ResourceBlockBandwidth, *types.ResourceBlockIOPS:
		b.add(name, Ignored, "block I/O limits are not implemented")
	case *types.ResourceNetworkBandwidth:
		b.add(name, Ignored, "network bandwidth limits are not implemented")
	case *types.UnixSysctl:
		b.add(name, Ignored, "sysctls are not implemented")
	case nil:
		b.add(name, Ignored, "unknown isolator")
	default:
		b.add(name, Ignored, "isolator type %T is not supported", v)
	}
	return nil
}

func (b *builder) capabilities(name string, set []types.LinuxCapability, retain bool) error {
	b.capsSet = true
	names := make([]string, len(set))
	for i, c := range set {
		names[i] = string(c)
	}
	parsed, err := caps.ParseSet(names)
	if err != nil {
		return err
	}
	if b.opts.DisableCapabilities {
		b.add(name, Ignored, "capability restrictions are disabled (--disable-capabilities-restriction)")
		return nil
	}
	keep := caps.Bounding(parsed, retain)
	if retain {
		// The image names what the app needs: a non-root app gets it as
		// ambient capabilities, a root app through the bounding set.
		b.p.Caps = &caps.Sets{Bounding: keep, Effective: keep, Permitted: keep, Inheritable: keep, Ambient: keep}
		detail := fmt.Sprintf("bounding set %s, also ambient for a non-root user", keep)
		if extra := keep &^ caps.Default; extra != 0 {
			detail += fmt.Sprintf(" (beyond appc's default set: %s)", extra)
		}
		b.add(name, Enforced, "%s", detail)
		return nil
	}
	b.p.Caps = &caps.Sets{Bounding: keep, Effective: keep, Permitted: keep}
	detail := fmt.Sprintf("bounding set %s", keep)
	if extra := parsed &^ caps.Default; extra != 0 {
		detail += fmt.Sprintf(" (%s not in the default set: no effect)", extra)
	}
	b.add(name, Enforced, "%s", detail)
	return nil
}

func (b *builder) seccomp(name string, mode seccomp.Mode, set []types.LinuxSeccompEntry, errno types.LinuxSeccompErrno) error {
	b.seccompSet = true
	entries := make([]string, len(set))
	for i, e := range set {
		entries[i] = string(e)
	}
	var f *seccomp.Filter
	var err error
	if mode == seccomp.Remove {
		f, err = seccomp.FromRemoveSet(entries, string(errno))
	} else {
		f, err = seccomp.FromRetainSet(entries, string(errno))
	}
	if err != nil {
		return err
	}
	if b.opts.DisableSeccomp {
		b.add(name, Ignored, "seccomp is disabled (--disable-seccomp)")
		return nil
	}
	if f == nil {
		b.add(name, Enforced, "%s: no filter", seccomp.All)
		return nil
	}
	status, notes, err := b.filter(f)
	if err != nil {
		return err
	}
	if mode == seccomp.Retain {
		var added []string
		for _, s := range seccomp.Lifecycle() {
			if !slices.Contains(entries, s) && !slices.Contains(entries, seccomp.GroupLifecycle) {
				added = append(added, s)
			}
		}
		if len(added) > 0 {
			status = Modified
			notes = append(notes, "added to start and end the app: "+strings.Join(added, ","))
		}
	}
	b.add(name, status, "%s", describeFilter(f, notes))
	return nil
}

// filter validates f by assembling it and notes the syscalls this
// architecture lacks.
func (b *builder) filter(f *seccomp.Filter) (Status, []string, error) {
	prog, err := f.Assemble()
	if err != nil {
		return "", nil, err
	}
	b.p.Seccomp = f
	if len(prog.Skipped) > 0 {
		return Modified, []string{fmt.Sprintf("not syscalls on %s, skipped: %s", prog.Arch, strings.Join(prog.Skipped, ","))}, nil
	}
	return Enforced, nil, nil
}

func describeFilter(f *seccomp.Filter, notes []string) string {
	action := "kill the app (SIGSYS)"
	if f.Errno != "" {
		action = "fail with " + f.Errno
	}
	var s string
	if f.Mode == seccomp.Remove {
		s = fmt.Sprintf("%d syscalls %s: %s", len(f.Syscalls), action, strings.Join(f.Syscalls, ","))
	} else {
		s = fmt.Sprintf("%d syscalls allowed, the others %s", len(f.Syscalls), action)
	}
	for _, n := range notes {
		s += "; " + n
	}
	return s
}

func (b *builder) memory(name string, r *types.ResourceMemory) error {
	if r.Limit() == nil {
		b.add(name, Ignored, "no limit given; requests are not enforced")
		return nil
	}
	n := r.Limit().Value()
	if n <= 0 {
		return errdefs.InvalidArgument("memory limit %s is not positive", r.Limit())
	}
	b.p.Cgroup.MemoryMax = n
	if r.Request() != nil {
		b.add(name, Modified, "limit %d bytes; request %s ignored (only limits are enforced)", n, r.Request())
		return nil
	}
	b.add(name, Enforced, "limit %d bytes", n)
	return nil
}

// minCPUQuota is the smallest CFS quota the kernel takes, in µs.
const minCPUQuota = 1000

func (b *builder) cpu(name string, r *types.ResourceCPU) error {
	if r.Limit() == nil {
		b.add(name, Ignored, "no limit given; requests are not enforced (see os/linux/cpu-shares)")
		return nil
	}
	milli := r.Limit().MilliValue()
	if milli <= 0 {
		return errdefs.InvalidArgument("cpu limit %s is not positive", r.Limit())
	}
	quota := milli * cgroup.DefaultCPUPeriod / 1000
	var notes []string
	status := Enforced
	if quota < minCPUQuota {
		quota = minCPUQuota
		status = Modified
		notes = append(notes, fmt.Sprintf("raised to %dm, the kernel's smallest quota", minCPUQuota*1000/cgroup.DefaultCPUPeriod))
	}
	if r.Request() != nil {
		status = Modified
		notes = append(notes, fmt.Sprintf("request %s ignored (only limits are enforced; see os/linux/cpu-shares)", r.Request()))
	}
	b.p.Cgroup.CPUQuota = quota
	b.p.Cgroup.CPUPeriod = cgroup.DefaultCPUPeriod
	detail := fmt.Sprintf("%dµs every %dµs (%dm)", quota, cgroup.DefaultCPUPeriod, quota*1000/cgroup.DefaultCPUPeriod)
	for _, n := range notes {
		detail += "; " + n
	}
	b.add(name, status, "%s", detail)
	return nil
}

// defaults fills in what the image left unset.
func (b *builder) defaults() error {
	if !b.capsSet {
		if b.opts.DisableCapabilities {
			b.add("capabilities", Ignored, "disabled (--disable-capabilities-restriction): a root app keeps every capability")
		} else {
			d := caps.Default
			b.p.Caps = &caps.Sets{Bounding: d, Effective: d, Permitted: d}
			b.add("capabilities", Default, "bounding set %s", d)
		}
	}
	if !b.seccompSet {
		if b.opts.DisableSeccomp {
			b.add("seccomp", Ignored, "disabled (--disable-seccomp): no filter")
		} else {
			f := seccomp.Default()
			_, notes, err := b.filter(f)
			if err != nil {
				return fmt.Errorf("default seccomp filter: %w", err)
			}
			b.add("seccomp", Default, "%s", describeFilter(f, notes))
		}
	}
	if b.opts.DisablePaths {
		b.add("paths", Ignored, "disabled (--disable-paths): /proc and /sys are not restricted")
	} else {
		b.p.Paths = DefaultPaths()
		b.add("paths", Default, "read-only %s; masked %s", strings.Join(b.p.Paths.ReadOnly, ","), strings.Join(b.p.Paths.Masked, ","))
	}
	if b.p.Caps != nil {
		if err := b.p.Caps.Validate(); err != nil {
			return err
		}
	}
	return b.p.Cgroup.Validate()
}
