package mountplan

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Mode says how the rootfses are made.
type Mode int

const (
	// Overlay mounts an overlayfs on each rootfs.
	Overlay Mode = iota + 1
	// Copy copies each rendered tree into the pod directory.
	Copy
)

func (m Mode) String() string {
	switch m {
	case Overlay:
		return "overlay"
	case Copy:
		return "copy"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Names of the directories under stage1abi.OverlayDir.
const (
	overlayStage1 = "stage1" // overlay/stage1/{upper,work}
	overlayApps   = "apps"   // overlay/apps/<app>/{upper,work}
	upperDir      = "upper"
	workDir       = "work"
)

// App is one app of the pod.
type App struct {
	// Name is the app's name in the pod manifest, an appc ACName.
	Name string
	// Rootfs is the rootfs directory of the app image's rendered tree: the
	// overlay lower layer, or the tree copied.
	Rootfs string
}

// Config is the input of Build. Every path is absolute.
type Config struct {
	// PodDir is the pod directory. Every step of the plan stays inside it.
	PodDir string
	// Stage1Rootfs is the rootfs directory of the stage1 image's rendered
	// tree. It is not used, and may be empty, with Stage1Empty.
	Stage1Rootfs string
	// Stage1Empty makes the pod's stage1 rootfs an empty directory of the
	// pod, neither a mount nor a copy, for a stage1 that asks for it
	// (stage1abi.AnnotationPodRootfs): the app rootfses are made in it as
	// in the stage1's image, with no overlay of the stage1 to hold them.
	Stage1Empty bool
	// Apps are the pod's apps, in pod manifest order.
	Apps []App
	// Mode says whether to mount overlays or to copy.
	Mode Mode
	// MetaCopy mounts the overlays with metacopy=on (overlayfs.rst,
	// "Metadata only copy up"): a change of owner or mode copies up the
	// file's metadata, not its data. A pod run with --private-users has
	// its whole root filesystems chowned where they cannot be idmapped.
	MetaCopy bool
}

// Action is what a step does.
type Action int

const (
	// ActionMkdir creates Step.Path and its missing parents, mode 0755.
	ActionMkdir Action = iota + 1
	// ActionMount mounts Step.Mount on Step.Path.
	ActionMount
	// ActionCopy copies the tree at Step.Source to Step.Path (CopyTree).
	ActionCopy
)

func (a Action) String() string {
	switch a {
	case ActionMkdir:
		return "mkdir"
	case ActionMount:
		return "mount"
	case ActionCopy:
		return "copy"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Step is one action of a plan.
type Step struct {
	Action Action
	// Path is the directory created, the mount target or the copy
	// destination.
	Path string
	// Source is the tree copied by ActionCopy.
	Source string
	// Mount is what ActionMount mounts; Mount.Target equals Path.
	Mount Mount
}

// String formats s as one line, as in the golden files.
func (s Step) String() string {
	switch s.Action {
	case ActionMount:
		return fmt.Sprintf("mount %s", s.Mount)
	case ActionCopy:
		return fmt.Sprintf("copy %s %s", s.Source, s.Path)
	}
	return fmt.Sprintf("%s %s", s.Action, s.Path)
}

// Plan is the ordered list of steps that makes a pod's rootfses. The order
// matters: app targets live inside the stage1 rootfs, so they are created
// after the stage1 rootfs is mounted.
type Plan struct {
	// PodDir is the directory every step stays in.
	PodDir string
	Steps  []Step

	metaCopy bool // Config.MetaCopy
}

// Mounts returns the mounts of the plan, in order.
func (p Plan) Mounts() []Mount {
	var ms []Mount
	for _, s := range p.Steps {
		if s.Action == ActionMount {
			ms = append(ms, s.Mount)
		}
	}
	return ms
}

// String formats the plan one step per line.
func (p Plan) String() string {
	var b strings.Builder
	for _, s := range p.Steps {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Build computes the plan that makes the stage1 rootfs and every app rootfs
// of cfg. It touches nothing; a Config error is of class
// errdefs.ErrInvalidArgument.
func Build(cfg Config) (Plan, error) {
	if err := cfg.validate(); err != nil {
		return Plan{}, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("build mount plan for %s: %w", cfg.PodDir, err))
	}
	p := Plan{PodDir: cfg.PodDir, metaCopy: cfg.MetaCopy}
	pod := func(rel string) string { return filepath.Join(cfg.PodDir, rel) }

	if cfg.Stage1Empty {
		p.Steps = append(p.Steps, Step{Action: ActionMkdir, Path: pod(stage1abi.Stage1RootfsRel)})
	} else {
		upper, work := Stage1OverlayDirs(cfg.PodDir)
		p.add(cfg.Mode, cfg.Stage1Rootfs, upper, work, pod(stage1abi.Stage1RootfsRel))
	}
	for _, a := range cfg.Apps {
		upper, work := AppOverlayDirs(cfg.PodDir, a.Name)
		p.add(cfg.Mode, a.Rootfs, upper, work, pod(stage1abi.AppRootfs(a.Name)))
	}
	return p, nil
}

// Stage1OverlayDirs are the overlayfs upper and work directories of a
// pod's stage1 rootfs.
func Stage1OverlayDirs(podDir string) (upper, work string) {
	d := filepath.Join(podDir, stage1abi.OverlayDir, overlayStage1)
	return filepath.Join(d, upperDir), filepath.Join(d, workDir)
}

// AppOverlayDirs are the overlayfs upper and work directories of an app's
// rootfs: the upper one holds what the app changed.
func AppOverlayDirs(podDir, app string) (upper, work string) {
	d := filepath.Join(podDir, stage1abi.OverlayDir, overlayApps, app)
	return filepath.Join(d, upperDir), filepath.Join(d, workDir)
}

// add appends the steps that make target from the tree at lower.
func (p *Plan) add(mode Mode, lower, upper, work, target string) {
	if mode == Copy {
		p.Steps = append(p.Steps,
			Step{Action: ActionMkdir, Path: filepath.Dir(target)},
			Step{Action: ActionCopy, Source: lower, Path: target},
		)
		return
	}
	m := OverlayMount(lower, upper, work, target)
	if p.metaCopy {
		m = m.WithMetaCopy()
	}
	p.Steps = append(p.Steps,
		Step{Action: ActionMkdir, Path: upper},
		Step{Action: ActionMkdir, Path: work},
		Step{Action: ActionMkdir, Path: target},
		Step{Action: ActionMount, Path: target, Mount: m},
	)
}

// OverlayMount is the overlayfs mount of target with one read-only lower
// layer. The paths must not contain the characters overlayfs uses as
// separators (see checkOverlayPath).
func OverlayMount(lower, upper, work, target string) Mount {
	return Mount{
		Source: "overlay",
		Target: target,
		FSType: "overlay",
		Data:   fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work),
	}
}

// WithMetaCopy is m, an OverlayMount, with metacopy=on (Config.MetaCopy).
// An upper directory that holds metadata-only copies must be mounted so
// again: overlayfs refuses to follow them otherwise.
func (m Mount) WithMetaCopy() Mount {
	m.Data += ",metacopy=on"
	return m
}

func (cfg Config) validate() error {
	if cfg.Mode != Overlay && cfg.Mode != Copy {
		return fmt.Errorf("unknown mode %d", int(cfg.Mode))
	}
	check := func(what, p string) error {
		if err := checkAbs(what, p); err != nil {
			return err
		}
		if cfg.Mode == Overlay {
			return checkOverlayPath(what, p)
		}
		return nil
	}
	if err := check("pod directory", cfg.PodDir); err != nil {
		return err
	}
	if !cfg.Stage1Empty {
		if err := check("stage1 rootfs", cfg.Stage1Rootfs); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(cfg.Apps))
	for _, a := range cfg.Apps {
		if _, err := types.NewACName(a.Name); err != nil {
			return fmt.Errorf("app name %q: %w", a.Name, err)
		}
		if seen[a.Name] {
			return fmt.Errorf("app %q appears twice", a.Name)
		}
		seen[a.Name] = true
		if err := check("rootfs of app "+a.Name, a.Rootfs); err != nil {
			return err
		}
	}
	return nil
}

func checkAbs(what, p string) error {
	if p == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("%s %q is not a clean absolute path", what, p)
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%s %q contains a NUL byte", what, p)
	}
	return nil
}

// checkOverlayPath refuses the characters that separate overlayfs options
// (comma), lower layers (colon) or escape them (backslash), and newlines,
// rather than escaping them: the store and pod paths never contain them.
func checkOverlayPath(what, p string) error {
	if i := strings.IndexAny(p, ",:\\\n"); i >= 0 {
		return fmt.Errorf("%s %q contains %q, which overlayfs options cannot carry", what, p, p[i])
	}
	return nil
}

// under reports whether path is dir or inside it; both are clean and
// absolute.
func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
