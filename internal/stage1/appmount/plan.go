package appmount

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/stage1/abiargs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// MountKind says how a Mount is made.
type MountKind string

const (
	// KindFS mounts a new filesystem instance (proc, tmpfs).
	KindFS MountKind = "fs"
	// KindBind bind-mounts a host path. The target is created as a
	// directory or an empty file, whichever the source is.
	KindBind MountKind = "bind"
)

// MountFlags are the per-mount options of a Mount.
type MountFlags uint

// The flags. ReadOnly applies to the new mount, and with Recursive to all
// the mounts a recursive bind copies, unless ReadOnlyTop keeps it to the
// new mount (stage1abi.ReadOnlyTop).
const (
	Recursive MountFlags = 1 << iota
	ReadOnly
	NoSuid
	NoDev
	NoExec
	ReadOnlyTop
)

var flagNames = []struct {
	flag MountFlags
	name string
}{
	{Recursive, "rec"}, {ReadOnly, "ro"}, {NoSuid, "nosuid"}, {NoDev, "nodev"}, {NoExec, "noexec"}, {ReadOnlyTop, "ro-top"},
}

// String lists the flags as "rec,ro".
func (f MountFlags) String() string {
	var names []string
	for _, fn := range flagNames {
		if f&fn.flag != 0 {
			names = append(names, fn.name)
		}
	}
	return strings.Join(names, ",")
}

// MarshalJSON writes the flags as a list of names, for readable plans.
func (f MountFlags) MarshalJSON() ([]byte, error) {
	names := []string{}
	for _, fn := range flagNames {
		if f&fn.flag != 0 {
			names = append(names, fn.name)
		}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *MountFlags) UnmarshalJSON(data []byte) error {
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return err
	}
	*f = 0
next:
	for _, n := range names {
		for _, fn := range flagNames {
			if fn.name == n {
				*f |= fn.flag
				continue next
			}
		}
		return fmt.Errorf("unknown mount flag %q", n)
	}
	return nil
}

// Octal is a file mode written as an octal string ("0755") in JSON.
type Octal uint32

// MarshalJSON writes the mode as a four-digit octal string.
func (o Octal) MarshalJSON() ([]byte, error) { return json.Marshal(fmt.Sprintf("%04o", uint32(o))) }

// UnmarshalJSON reads an octal string.
func (o *Octal) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := parseMode(s)
	*o = v
	return err
}

func parseMode(s string) (Octal, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal file mode", s)
	}
	return Octal(v), nil
}

// Mount is one step of a Plan.
type Mount struct {
	Kind MountKind `json:"kind"`
	// Source is the filesystem source for KindFS ("proc") and the
	// absolute host path for KindBind.
	Source string `json:"source"`
	// Target is the absolute path inside the app's rootfs. It is
	// resolved in the rootfs (symlinks cannot leave it) and created if
	// missing.
	Target string     `json:"target"`
	FSType string     `json:"fstype,omitempty"`
	Data   string     `json:"data,omitempty"`
	Flags  MountFlags `json:"flags"`
	// SourceNoSymlinks refuses a source that is, or passes through, a
	// symlink, as appc asks for host volumes.
	SourceNoSymlinks bool `json:"sourceNoSymlinks,omitempty"`
	// Fallback marks a mount that only fills a gap: it is skipped when
	// the rootfs already has the target or the host lacks the source.
	Fallback bool `json:"fallback,omitempty"`
	// TargetMustExist marks a mount whose target lies in a volume: it is
	// stacked on the target when the volume has it, and skipped, with a
	// warning, when not, so that nothing is ever created in a volume
	// (which may be a host directory).
	TargetMustExist bool `json:"targetMustExist,omitempty"`
	// Propagation is a stage1abi.Propagation* value for a volume whose
	// app asks for one (stage1abi.AnnotationMountOptions); empty leaves
	// the flavor's default.
	Propagation string `json:"propagation,omitempty"`
	// Purpose names the mount in logs and errors: "system",
	// "volume NAME", "dns".
	Purpose string `json:"purpose"`
}

// RecursiveReadOnly reports whether the mount's read-only flag applies to
// every mount a recursive bind copies.
func (m Mount) RecursiveReadOnly() bool {
	return m.Flags&ReadOnly != 0 && m.Flags&Recursive != 0 && m.Flags&ReadOnlyTop == 0
}

// EmptyVolume is the host directory backing a volume of kind "empty". It
// is created before the mounts, under the pod directory.
type EmptyVolume struct {
	Name string `json:"name"`
	Path string `json:"path"` // absolute host path
	Mode Octal  `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
}

// Plan is the complete filesystem setup of the app, computed before any
// of it is done.
type Plan struct {
	// RootFS is the absolute host path of the app's rootfs. The pod
	// process bind-mounts it onto itself, mounts Mounts inside it and
	// chroots into it.
	RootFS string `json:"rootfs"`
	// ReadOnlyRoot makes the rootfs mount read-only once Mounts are in
	// place (readOnlyRootFS in the pod manifest).
	ReadOnlyRoot bool          `json:"readOnlyRoot,omitempty"`
	EmptyVolumes []EmptyVolume `json:"emptyVolumes,omitempty"`
	Mounts       []Mount       `json:"mounts"`
	// Warnings are worth telling the user, but do not stop the pod.
	Warnings []string `json:"warnings,omitempty"`
}

// PlanConfig is the input of PlanMounts.
type PlanConfig struct {
	PodDir string // absolute host path of the pod directory
	Pod    *schema.PodManifest
	App    *schema.RuntimeApp
	DNS    abiargs.DNSConf
	// ResolvConf and Hosts are host paths of files the stage1 generated
	// for the default DNS mode (a pod with a network of its own): a
	// ResolvConf (the CNI result's DNS) replaces the image's
	// /etc/resolv.conf; Hosts (the pod's hostname) is used instead of the
	// host's /etc/hosts, still only when the image has none. Empty: the
	// host's files, as fly uses them.
	ResolvConf, Hosts string
}

// System mount targets.
const (
	procDir    = "/proc"
	sysDir     = "/sys"
	devDir     = "/dev"
	tmpDir     = "/tmp"
	resolvConf = "/etc/resolv.conf"
	hostsFile  = "/etc/hosts"
)

// PlanMounts validates the pod's volumes and the app's mounts and computes
// the app's filesystem plan, in mount order:
//
//  1. /proc: a new proc instance (nosuid, nodev, noexec);
//  2. /sys: a recursive, read-only bind of the host's /sys;
//  3. /dev: a recursive bind of the host's /dev (fly apps are privileged);
//  4. /tmp: a tmpfs (mode 1777, nosuid, nodev), unless a volume or an app
//     mount point is at /tmp;
//  5. the app's mounts in manifest order: host volumes bind their source
//     (recursively unless the volume says recursive=false; the source must
//     not be or pass through a symlink); empty volumes bind a directory
//     created under the pod directory (stage1abi.EmptyVolumeDir) with the
//     volume's mode, uid and gid. A mount is read-only if its volume or the
//     app's mount point for it says readOnly: the mount point can make a
//     volume read-only, never a read-only volume writable;
//  6. /etc/resolv.conf and /etc/hosts per --dns-conf-mode: default binds
//     the host's file only when the rootfs has none (fly shares the host's
//     network; see PlanConfig.ResolvConf and Hosts for a pod with a network
//     of its own), host always binds the host's, stage0 binds the file stage0
//     wrote, none leaves the rootfs alone. These binds are read-only.
//
// Mount paths must be absolute; "/" and exactly /proc, /sys or /dev are
// refused, and so are two mounts at the same path or one inside another
// (appc: overlapping targets SHOULD be an error). App mount points no pod
// mount fulfills are reported as warnings.
func PlanMounts(cfg PlanConfig) (Plan, error) {
	if !filepath.IsAbs(cfg.PodDir) {
		return Plan{}, errdefs.InvalidArgument("pod directory %q is not absolute", cfg.PodDir)
	}
	ra := cfg.App
	if ra == nil || ra.App == nil {
		return Plan{}, errdefs.InvalidArgument("no app to plan mounts for")
	}
	p := Plan{
		RootFS:       filepath.Join(cfg.PodDir, stage1abi.AppRootfs(ra.Name.String())),
		ReadOnlyRoot: ra.ReadOnlyRootFS,
	}

	vols, err := planVolumes(cfg, &p)
	if err != nil {
		return Plan{}, err
	}

	p.Mounts = append(p.Mounts,
		Mount{Kind: KindFS, Source: "proc", Target: procDir, FSType: "proc", Flags: NoSuid | NoDev | NoExec, Purpose: "system"},
		Mount{Kind: KindBind, Source: sysDir, Target: sysDir, Flags: Recursive | ReadOnly, Purpose: "system"},
		Mount{Kind: KindBind, Source: devDir, Target: devDir, Flags: Recursive, Purpose: "system"},
	)
	if !coversTmp(ra, vols) {
		p.Mounts = append(p.Mounts, Mount{Kind: KindFS, Source: "tmpfs", Target: tmpDir, FSType: "tmpfs", Data: "mode=1777", Flags: NoSuid | NoDev, Purpose: "system"})
	}
	p.Mounts = append(p.Mounts, vols...)

	for _, f := range []struct {
		target, mode, stage0, generated string
		replaces                        bool
	}{
		{resolvConf, cfg.DNS.Resolv, stage1abi.Stage0ResolvConfRel, cfg.ResolvConf, true},
		{hostsFile, cfg.DNS.Hosts, stage1abi.Stage0HostsRel, cfg.Hosts, false},
	} {
		m := Mount{Kind: KindBind, Target: f.target, Flags: ReadOnly, Purpose: "dns"}
		switch f.mode {
		case stage1abi.DNSModeNone:
			continue
		case stage1abi.DNSModeDefault, "":
			m.Source, m.Fallback = f.target, true
			if f.generated != "" {
				m.Source, m.Fallback = f.generated, !f.replaces
			}
		case stage1abi.DNSModeHost:
			m.Source = f.target
		case stage1abi.DNSModeStage0:
			m.Source = filepath.Join(cfg.PodDir, f.stage0)
		default:
			return Plan{}, errdefs.InvalidArgument("unknown DNS mode %q for %s", f.mode, f.target)
		}
		if v := volumeOver(vols, f.target); v != nil {
			// rkt's precedence: the flags (host, stage0) and the pod
			// network's file (generated) win over a volume, which wins
			// over the host's file as a mere fallback.
			if m.Fallback {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s is not set up: it lies in the %s at %s", f.target, v.Purpose, v.Target))
				continue
			}
			m.TargetMustExist = true
		}
		p.Mounts = append(p.Mounts, m)
	}
	return p, nil
}

// planVolumes computes the mounts of the app's volumes and records the
// empty volumes in p.
func planVolumes(cfg PlanConfig, p *Plan) ([]Mount, error) {
	ra := cfg.App
	var mounts []Mount
	emptySeen := map[string]bool{}
	opts, err := mountOptions(ra)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	appMounts := withImplicitMounts(cfg.Pod, ra)
	for _, m := range appMounts {
		target, err := mountTarget(m.Path)
		if err != nil {
			return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("app %q mount of volume %q: %w", ra.Name, m.Volume, err))
		}
		for _, prev := range mounts {
			if target == prev.Target || under(target, prev.Target) || under(prev.Target, target) {
				return nil, errdefs.InvalidArgument("app %q: mount at %s overlaps the %s at %s", ra.Name, target, prev.Purpose, prev.Target)
			}
		}
		vol, err := findVolume(cfg.Pod, m)
		if err != nil {
			return nil, fmt.Errorf("app %q mount at %s: %w", ra.Name, target, err)
		}
		name := vol.Name.String()
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return nil, errdefs.InvalidArgument("volume name %q is not a valid AC name", name)
		}
		ro := (vol.ReadOnly != nil && *vol.ReadOnly) || mountPointReadOnly(ra.App.MountPoints, m)
		mt := Mount{Kind: KindBind, Target: target, Purpose: "volume " + name}
		if ro {
			mt.Flags |= ReadOnly
		}
		opt, hasOpt := opts[name]
		used[name] = true
		if hasOpt {
			if opt.ReadOnly == stage1abi.ReadOnlyTop && ro {
				mt.Flags |= ReadOnlyTop
			}
			if opt.ReadOnly == stage1abi.ReadOnlyRecursive && !ro {
				return nil, errdefs.InvalidArgument("app %q: volume %q is writable: it cannot be recursively read-only", ra.Name, name)
			}
			mt.Propagation = opt.Propagation
			if opt.ReadOnly == stage1abi.ReadOnlyRecursive && opt.Propagation != "" && opt.Propagation != stage1abi.PropagationPrivate {
				return nil, errdefs.InvalidArgument("app %q: volume %q: a recursively read-only mount must be private, not %s", ra.Name, name, opt.Propagation)
			}
		}
		switch vol.Kind {
		case "host":
			if !filepath.IsAbs(vol.Source) {
				return nil, errdefs.InvalidArgument("host volume %q: source %q is not absolute", name, vol.Source)
			}
			mt.Source = filepath.Clean(vol.Source)
			mt.SourceNoSymlinks = true
			if vol.Recursive == nil || *vol.Recursive {
				mt.Flags |= Recursive
			}
		case "empty":
			ev, err := emptyVolume(cfg.PodDir, vol)
			if err != nil {
				return nil, err
			}
			mt.Source = ev.Path
			if !emptySeen[name] {
				emptySeen[name] = true
				p.EmptyVolumes = append(p.EmptyVolumes, ev)
			}
		default:
			return nil, errdefs.InvalidArgument("volume %q has unknown kind %q", name, vol.Kind)
		}
		if !mt.RecursiveReadOnly() && hasOpt && opt.ReadOnly == stage1abi.ReadOnlyRecursive {
			return nil, errdefs.InvalidArgument("app %q: volume %q is not recursive: it cannot be recursively read-only", ra.Name, name)
		}
		mounts = append(mounts, mt)
	}
	for name := range opts {
		if used[name] {
			continue
		}
		return nil, errdefs.InvalidArgument("app %q: annotation %s names volume %q, which the app does not mount", ra.Name, stage1abi.AnnotationMountOptions, name)
	}
	for _, mp := range ra.App.MountPoints {
		if !fulfilled(appMounts, mp) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("mount point %q at %s has no volume and stays as the image left it", mp.Name, mp.Path))
		}
	}
	return mounts, nil
}

// mountOptions reads the app's stage1abi.AnnotationMountOptions, by
// volume name.
func mountOptions(ra *schema.RuntimeApp) (map[string]stage1abi.MountOption, error) {
	v, ok := ra.Annotations.Get(stage1abi.AnnotationMountOptions)
	if !ok {
		return map[string]stage1abi.MountOption{}, nil
	}
	list, err := stage1abi.ParseMountOptions(v)
	if err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("app %q: %w", ra.Name, err))
	}
	out := make(map[string]stage1abi.MountOption, len(list))
	for _, o := range list {
		out[o.Volume] = o
	}
	return out, nil
}

// mountTarget cleans and checks the in-root path of an app mount.
func mountTarget(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	t := path.Clean(p)
	switch t {
	case "/":
		return "", fmt.Errorf("path %q would cover the whole rootfs", p)
	case procDir, sysDir, devDir:
		return "", fmt.Errorf("path %q is reserved for fly's own %s mount", p, t)
	}
	return t, nil
}

// findVolume returns the volume a mount refers to: its appVolume if set,
// else the pod volume of that name.
func findVolume(pm *schema.PodManifest, m schema.Mount) (types.Volume, error) {
	if m.AppVolume != nil {
		return *m.AppVolume, nil
	}
	for _, v := range pm.Volumes {
		if v.Name.Equals(m.Volume) {
			return v, nil
		}
	}
	return types.Volume{}, errdefs.NotFound("no volume named %q in the pod manifest", m.Volume)
}

// mountPointReadOnly is the readOnly of the app mount point that m
// fulfills: the one at the same path, else the one named like the volume.
func mountPointReadOnly(mps []types.MountPoint, m schema.Mount) bool {
	for _, mp := range mps {
		if path.Clean(mp.Path) == path.Clean(m.Path) {
			return mp.ReadOnly
		}
	}
	for _, mp := range mps {
		if mp.Name.Equals(m.Volume) {
			return mp.ReadOnly
		}
	}
	return false
}

// withImplicitMounts returns the app's mounts from the pod manifest, plus
// one for each mount point they leave unserved that names a pod volume:
// an image's mount point is fulfilled by the pod volume of the same name
// when the pod manifest has no mount for it, as rkt and the appc ACE
// validator (its "database" volume) expect.
func withImplicitMounts(pm *schema.PodManifest, ra *schema.RuntimeApp) []schema.Mount {
	mounts := append([]schema.Mount(nil), ra.Mounts...)
	for _, mp := range ra.App.MountPoints {
		if fulfilled(mounts, mp) {
			continue
		}
		for _, v := range pm.Volumes {
			if v.Name.Equals(mp.Name) {
				mounts = append(mounts, schema.Mount{Volume: mp.Name, Path: mp.Path})
				break
			}
		}
	}
	return mounts
}

// fulfilled reports whether a pod mount serves the mount point.
func fulfilled(mounts []schema.Mount, mp types.MountPoint) bool {
	for _, m := range mounts {
		if path.Clean(m.Path) == path.Clean(mp.Path) || m.Volume.Equals(mp.Name) {
			return true
		}
	}
	return false
}

func emptyVolume(podDir string, v types.Volume) (EmptyVolume, error) {
	ev := EmptyVolume{
		Name: v.Name.String(),
		Path: filepath.Join(podDir, stage1abi.EmptyVolumeDir(v.Name.String())),
		Mode: 0o755,
	}
	if v.Mode != nil {
		m, err := parseMode(*v.Mode)
		if err != nil {
			return EmptyVolume{}, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("empty volume %q: %w", ev.Name, err))
		}
		ev.Mode = m
	}
	if v.UID != nil {
		ev.UID = *v.UID
	}
	if v.GID != nil {
		ev.GID = *v.GID
	}
	if ev.UID < 0 || ev.GID < 0 || ev.UID >= 1<<32-1 || ev.GID >= 1<<32-1 {
		return EmptyVolume{}, errdefs.InvalidArgument("empty volume %q: uid %d or gid %d out of range", ev.Name, ev.UID, ev.GID)
	}
	return ev, nil
}

// coversTmp reports whether the app provides /tmp itself, as a mount point
// or a volume mount.
func coversTmp(ra *schema.RuntimeApp, vols []Mount) bool {
	for _, mp := range ra.App.MountPoints {
		if path.Clean(mp.Path) == tmpDir {
			return true
		}
	}
	for _, v := range vols {
		if v.Target == tmpDir {
			return true
		}
	}
	return false
}

// volumeOver returns the volume mount containing target, if any.
func volumeOver(vols []Mount, target string) *Mount {
	for i := range vols {
		if target == vols[i].Target || under(target, vols[i].Target) {
			return &vols[i]
		}
	}
	return nil
}

// under reports whether the clean absolute path p lies strictly inside dir.
func under(p, dir string) bool { return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") }

// A Mounter performs one step of a Plan inside the app's rootfs. The real
// one (package entrypoint) runs in the pod's private mount namespace; tests
// record the calls.
type Mounter interface {
	Mount(ctx context.Context, m Mount) error
}

// Apply performs the plan's mounts in order, stopping at the first error.
func Apply(ctx context.Context, mnt Mounter, p Plan) error {
	for _, m := range p.Mounts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := mnt.Mount(ctx, m); err != nil {
			return fmt.Errorf("set up %s mount at %s: %w", m.Purpose, m.Target, err)
		}
	}
	return nil
}

// LoggingMounter logs every mount at debug level before passing it on.
type LoggingMounter struct {
	Next Mounter
	Log  *slog.Logger
}

// Mount logs m and calls the next Mounter.
func (l LoggingMounter) Mount(ctx context.Context, m Mount) error {
	l.Log.DebugContext(ctx, "mount", "purpose", m.Purpose, "kind", string(m.Kind), "source", m.Source,
		"target", m.Target, "fstype", m.FSType, "flags", m.Flags.String(), "fallback", m.Fallback)
	err := l.Next.Mount(ctx, m)
	if err != nil {
		l.Log.DebugContext(ctx, "mount failed", "target", m.Target, "err", err)
	}
	return err
}
