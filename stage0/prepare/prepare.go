// Package prepare lays out a pod directory: it fetches the stage1 and app
// images, renders their trees, writes the pod manifest and the per-app data
// stage1 reads, and mounts each rootfs (overlayfs over the rendered tree, a
// copy where overlayfs is impossible). The result is a pod in the prepare
// state, holding its lock, ready for the prepared state or for the stage1.
//
// It runs in stage0 and needs root for the mounts. It validates everything
// it can before it creates the pod, and removes the pod again when a later
// step fails, so no half-written pod is left behind.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/internal/timeline"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/stage0/stage1"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
	"github.com/nosecone/nscn/store/tree"
)

// App is one app the user asked for, with the overrides given on the
// command line.
type App struct {
	Image string // path, URL, ID or name, as for fetch
	// Signature is the image's detached signature, if not beside it.
	Signature string
	Name      string   // --name; default: the last part of the image name
	Exec      string   // --exec: replaces the image's exec
	Args      []string // after --: appended to the exec
	// Env are --set-env/--set-env-file values, applied over the image's.
	Env               []types.EnvironmentVariable
	User, Group       string
	SupplementaryGIDs []int
	WorkingDir        string
	Mounts            []schema.Mount // --mount volume=…,target=…
	ReadOnlyRootfs    bool
	Isolators         types.Isolators
	// VolumeTrees are the keys of the rendered trees the app's mounts
	// bind (the CRI's image volumes): the pod holds them in the store
	// as it holds the app's own tree (stage1abi.AppVolumeTreesFile).
	VolumeTrees []string
	// Annotations are the runtime app's annotations in the pod manifest,
	// which stage1 leaves alone and tools read back (the CRI server keeps
	// a container's metadata there).
	Annotations types.Annotations
}

// Fetcher brings the images of a pod into the store: fetch.Fetcher in
// nscn-fetch, localimage.Resolver in nscn (whose localimage.ErrNotStored
// makes nscn hand the command to nscn-fetch).
type Fetcher interface {
	Fetch(ctx context.Context, req localimage.Request) (*index.Image, error)
}

// Options is everything a pod is prepared from.
type Options struct {
	DataDir string
	Store   *store.Store
	Fetcher Fetcher
	Stage1  stage1.Ref
	Apps    []App
	Volumes []types.Volume
	// Ports are the pod manifest's ports (--port): host ports forwarded
	// to a port an app's image names.
	Ports []types.ExposedPort
	// NoOverlay copies the rendered trees into the pod directory instead
	// of mounting overlays on them (--no-overlay).
	NoOverlay bool
	// UserAnnotations and UserLabels are --user-annotation and
	// --user-label: the pod manifest's userAnnotations and userLabels,
	// which stage1 leaves alone and tools read back.
	UserAnnotations types.UserAnnotations
	UserLabels      types.UserLabels
	// PodManifest, when set, is used as the pod manifest instead of one
	// generated from Apps (rkt's --pod-manifest).
	PodManifest *schema.PodManifest
	// Sandbox prepares a mutable pod (nscn app sandbox): Apps may be
	// empty, and the apps come later (AddApp).
	Sandbox bool
	// AllCapabilities is --insecure-options=capabilities: apps keep every
	// capability, so an image asking for more than appc's default set
	// needs no further consent.
	AllCapabilities bool
	// InheritEnv gives every app the variables of HostEnv that neither
	// the image nor the user set.
	InheritEnv bool
	HostEnv    []string
	Log        *slog.Logger
	// Mounter makes the rootfs mounts; nil means the kernel's.
	Mounter mountplan.Mounter
	// Timeline marks Prepare's phases (nil: off).
	Timeline *timeline.Timeline
	// PrivateUsers gives the pod an ID range of its own
	// (pod.AllocatePrivateUsers), for a stage1 that runs it in a user
	// namespace (--private-users).
	PrivateUsers bool
}

// Prepared is a pod in the prepare state, holding its lock.
type Prepared struct {
	Pod         *pod.Pod
	Entrypoints stage1.Entrypoints
	// Stage1Tree is the stage1's rendered tree, which its entrypoints
	// are executed from (stage1.Pod).
	Stage1Tree *tree.Tree
	Manifest   *schema.PodManifest
	written    []string // the files layout wrote, for Sync
}

// image is a fetched and rendered image.
type image struct {
	entry *index.Image
	// manifest is the store's, shared with the tree planner (one parse
	// per image): read it, copy what the pod changes.
	manifest *schema.ImageManifest
	tree     *tree.Tree
	// emptyRootfs is set on the stage1's image when it asks for an
	// empty pod rootfs (stage1.Entrypoints.EmptyRootfs).
	emptyRootfs bool
}

// Prepare fetches and renders everything, then creates the pod.
func Prepare(ctx context.Context, o Options) (_ *Prepared, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := validateVolumes(o.Volumes); err != nil {
		return nil, err
	}
	s1, err := fetchStage1(ctx, o)
	if err != nil {
		return nil, err
	}
	eps, err := stage1.ReadEntrypoints(s1.manifest)
	if err != nil {
		return nil, err
	}
	s1.emptyRootfs = eps.EmptyRootfs
	o.Timeline.Mark("stage1-image-found")
	if o.PrivateUsers && eps.Version < stage1abi.InterfaceVersionPrivateUsers {
		return nil, errdefs.Newf(errdefs.ErrNotImplemented,
			"--private-users: the stage1 %s cannot run a pod in a user namespace (it speaks interface version %d; --private-users needs %d, as stage1-nspawn has)",
			s1.entry.Name, eps.Version, stage1abi.InterfaceVersionPrivateUsers)
	}

	var pm *schema.PodManifest
	images := map[string]*image{} // by app name
	if o.PodManifest != nil {
		pm, err = fromPodManifest(ctx, o, images)
	} else {
		pm, err = generate(ctx, o, images)
	}
	if err != nil {
		return nil, err
	}
	if err := checkAppPID1(pm, s1.entry.Name, eps.Version); err != nil {
		return nil, err
	}
	o.Timeline.Mark("app-images-found")
	// From the first render until layout records the trees in the pod
	// directory, where image rm and image gc see them, the trees and
	// images are held by no pod yet: the shared references lock keeps
	// those two from removing them meanwhile.
	unlock, err := o.Store.LockReferences(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s1.tree, err = o.Store.Trees.Render(ctx, s1.entry.ID); err != nil {
		return nil, fmt.Errorf("render stage1 image %s: %w", s1.entry.Name, err)
	}
	for i, ra := range pm.Apps {
		im := images[ra.Name.String()]
		if im.tree, err = o.Store.Trees.Render(ctx, im.entry.ID); err != nil {
			return nil, fmt.Errorf("render image %s of app %s: %w", im.entry.Name, ra.Name, explainLimit(err))
		}
		if err := primaryGroup(im, pm.Apps[i].App, o.PodManifest == nil && !groupGiven(o, i)); err != nil {
			return nil, fmt.Errorf("app %s: %w", ra.Name, err)
		}
	}

	o.Timeline.Mark("trees-rendered")

	p, err := pod.NewPod(ctx, o.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			Discard(context.WithoutCancel(ctx), p, log)
		}
	}()
	if err = p.ToPreparing(ctx); err != nil {
		return nil, err
	}
	if o.PrivateUsers {
		r, err := p.AllocatePrivateUsers(ctx)
		if err != nil {
			return nil, err
		}
		log.Debug("user ID range", "pod", p.UUID, "range", r.String())
	}
	log.Debug("preparing pod", "pod", p.UUID, "stage1", s1.entry.Name)
	written, err := layout(ctx, o, log, p, s1, pm, images)
	if err != nil {
		return nil, fmt.Errorf("prepare pod %s: %w", p.UUID, err)
	}
	o.Timeline.Mark("pod-laid-out")
	if keys := staleUse(time.Now(), s1, images); len(keys) > 0 {
		if err := o.Store.MarkUsed(ctx, keys...); err != nil {
			log.Warn("record image use", "images", keys, "error", err)
		}
	}
	return &Prepared{Pod: p, Entrypoints: eps, Stage1Tree: s1.tree, Manifest: pm, written: written}, nil
}

// useResolution is how precisely a pod start records when its images were
// last used. An index transaction costs two fdatasyncs; a pod start
// within this long of the last recorded use skips it. The time is for
// `nscn image list` and image gc's grace period, which deal in minutes
// and more (and gc never removes an image a pod still uses).
const useResolution = time.Minute

// staleUse returns the keys of the stage1 and app images whose recorded
// last use is older than useResolution at now (or in the future: a clock
// set back).
func staleUse(now time.Time, s1 *image, apps map[string]*image) []string {
	var keys []string
	for _, im := range append([]*image{s1}, slices.Collect(maps.Values(apps))...) {
		if age := now.Sub(im.entry.LastUsed); age < 0 || age >= useResolution {
			if !slices.Contains(keys, im.entry.Key) {
				keys = append(keys, im.entry.Key)
			}
		}
	}
	return keys
}

// Discard removes a pod whose preparation failed, or that could not be
// started, unmounting first. If that fails too, the pod stays as an
// aborted prepare for `nscn gc`. The Pod must hold its lock.
func Discard(ctx context.Context, p *pod.Pod, log *slog.Logger) {
	if err := mountplan.UnmountAll(ctx, p.Path); err != nil {
		log.Warn("unmount failed pod; nscn gc will retry", "pod", p.UUID, "error", err)
		_ = p.Unlock()
		return
	}
	if err := p.ToGarbage(ctx); err != nil {
		log.Warn("discard failed pod; nscn gc will retry", "pod", p.UUID, "error", err)
		_ = p.Unlock()
		return
	}
	_ = p.Unlock()
	if err := pod.Remove(ctx, p, pod.WithUnmount(mountplan.UnmountAll)); err != nil {
		log.Warn("remove failed pod; nscn gc will retry", "pod", p.UUID, "error", err)
	}
}

func fetchStage1(ctx context.Context, o Options) (*image, error) {
	req := localimage.Request{Ref: o.Stage1.Value, Trusted: o.Stage1.Trusted}
	switch {
	case o.Stage1.Kind == stage1.Hash || o.Stage1.Kind == stage1.Name:
		req.PullPolicy = localimage.PullNever
	case o.Stage1.Kind == stage1.Path && o.Stage1.Trusted:
		// The stage1 that ships with nscn is a local file, not the
		// network --pull-policy=never keeps away from: it is read as
		// any stage1 (imported once, reused while unchanged).
		req.PullPolicy = localimage.PullNew
	}
	entry, err := o.Fetcher.Fetch(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("stage1 image %s: %w", o.Stage1.Value, err)
	}
	m, err := o.Store.Manifest(ctx, entry.ID)
	if err != nil {
		return nil, err
	}
	return &image{entry: entry, manifest: m}, nil
}

func fetchApp(ctx context.Context, o Options, ref, sig string) (*image, error) {
	entry, err := o.Fetcher.Fetch(ctx, localimage.Request{Ref: ref, Signature: sig})
	if err != nil {
		return nil, err
	}
	m, err := o.Store.Manifest(ctx, entry.ID)
	if err != nil {
		return nil, err
	}
	return &image{entry: entry, manifest: m}, nil
}

// generate builds the pod manifest from the apps on the command line.
func generate(ctx context.Context, o Options, images map[string]*image) (*schema.PodManifest, error) {
	if len(o.Apps) == 0 && !o.Sandbox {
		return nil, errdefs.InvalidArgument("no image to run: name at least one")
	}
	pm := schema.BlankPodManifest()
	pm.Volumes = o.Volumes
	for i, a := range o.Apps {
		ra, im, err := newRuntimeApp(ctx, o, i, a, o.Volumes, func(n string) bool { _, dup := images[n]; return dup })
		if err != nil {
			return nil, err
		}
		pm.Apps = append(pm.Apps, ra)
		images[ra.Name.String()] = im
	}
	if o.Sandbox {
		if pm.Apps == nil {
			pm.Apps = schema.AppList{} // "apps": [], as appc wants, not null
		}
		// No app declares the ports yet: the stage1 forwards them to
		// the apps added later.
		pm.Ports = o.Ports
		pm.UserAnnotations, pm.UserLabels = o.UserAnnotations, o.UserLabels
		return pm, nil
	}
	if err := checkPorts(pm, o.Ports); err != nil {
		return nil, err
	}
	pm.Ports = o.Ports
	pm.UserAnnotations, pm.UserLabels = o.UserAnnotations, o.UserLabels
	return pm, nil
}

// newRuntimeApp fetches the image of a (the i-th app on the command line)
// and makes its entry of the pod manifest: its name (taken says which are
// in use), the effective app, its mounts of volumes. It does not render
// the image.
func newRuntimeApp(ctx context.Context, o Options, i int, a App, volumes []types.Volume, taken func(string) bool) (schema.RuntimeApp, *image, error) {
	var none schema.RuntimeApp
	im, err := fetchApp(ctx, o, a.Image, a.Signature)
	if err != nil {
		return none, nil, err
	}
	if err := CheckOSArch(im.manifest, runtime.GOOS, runtime.GOARCH); err != nil {
		return none, nil, err
	}
	name := a.Name
	if name == "" {
		name = path.Base(im.manifest.Name.String())
	}
	acName, err := types.SanitizeACName(name)
	if err != nil || (a.Name != "" && acName != a.Name) {
		return none, nil, errdefs.InvalidArgument("app name %q is not a valid appc name (lowercase letters, digits and dashes)", name)
	}
	if err := CheckAppName(acName); err != nil {
		return none, nil, err
	}
	// A capability flag for the app replaces the image's isolators:
	// the operator chose.
	if err := capabilityConsent(acName, im.manifest, o.AllCapabilities || hasCapabilityIsolator(a.Isolators), grantWithFlag); err != nil {
		return none, nil, err
	}
	if taken(acName) {
		return none, nil, errdefs.InvalidArgument("two apps are named %q; give one a different --name", acName)
	}
	app, err := effectiveApp(im.manifest, a, o)
	if err != nil {
		return none, nil, fmt.Errorf("app %d (%s): %w", i+1, acName, err)
	}
	for _, m := range a.Mounts {
		if m.AppVolume != nil {
			// An app's own volume (the CRI's per-container host paths).
			if err := CheckVolume(*m.AppVolume); err != nil {
				return none, nil, fmt.Errorf("app %s: %w", acName, err)
			}
			if !m.AppVolume.Name.Equals(m.Volume) || hasVolume(volumes, m.Volume) {
				return none, nil, errdefs.InvalidArgument("app %s: its volume %q must be named as its mount and no pod volume", acName, m.Volume)
			}
			continue
		}
		if !hasVolume(volumes, m.Volume) {
			return none, nil, errdefs.InvalidArgument("app %s: --mount names volume %q, which no --volume defines", acName, m.Volume)
		}
	}
	id, err := types.NewHash(im.entry.ID)
	if err != nil {
		return none, nil, fmt.Errorf("image ID %s: %w", im.entry.ID, err)
	}
	return schema.RuntimeApp{
		Name: *types.MustACName(acName),
		Image: schema.RuntimeImage{
			Name:   &im.manifest.Name,
			ID:     *id,
			Labels: im.manifest.Labels,
		},
		App:            app,
		ReadOnlyRootFS: a.ReadOnlyRootfs,
		Mounts:         a.Mounts,
		Annotations:    a.Annotations,
	}, im, nil
}

// checkPorts refuses a --port whose name no app's image declares, before
// any pod exists (stage1 would refuse it too, later).
func checkPorts(pm *schema.PodManifest, ports []types.ExposedPort) error {
next:
	for _, ep := range ports {
		if ep.PodPort != nil {
			continue // --publish: a port of the pod, not of an app
		}
		for _, ra := range pm.Apps {
			for _, p := range ra.App.Ports {
				if p.Name == ep.Name {
					continue next
				}
			}
		}
		return errdefs.InvalidArgument("--port %s: no app's image declares a port named %q", ep.Name, ep.Name)
	}
	return nil
}

// effectiveApp merges the image's app with the user's overrides.
func effectiveApp(m *schema.ImageManifest, a App, o Options) (*types.App, error) {
	var app types.App
	if m.App != nil {
		app = *m.App
		app.Exec = append(types.Exec(nil), m.App.Exec...)
		app.Environment = append(types.Environment(nil), m.App.Environment...)
		app.Isolators = append(types.Isolators(nil), m.App.Isolators...)
	}
	if entrypoint, ok := ociEntrypoint(m); ok {
		// An OCI image keeps entrypoint and cmd apart, and so do the
		// overrides, as with docker: --exec replaces the entrypoint and
		// drops cmd (docker run --entrypoint), arguments replace cmd.
		switch {
		case a.Exec != "":
			app.Exec = append(types.Exec{a.Exec}, a.Args...)
		case len(a.Args) > 0:
			app.Exec = append(entrypoint, a.Args...)
		}
	} else {
		if a.Exec != "" {
			app.Exec = types.Exec{a.Exec}
		}
		app.Exec = append(app.Exec, a.Args...)
	}
	if len(app.Exec) == 0 {
		return nil, errdefs.InvalidArgument("image %s has no app to run; give one with --exec", m.Name)
	}
	if a.User != "" {
		app.User = a.User
	}
	if a.Group != "" {
		app.Group = a.Group
	}
	if app.User == "" {
		app.User = "0"
	}
	if app.Group == "" {
		app.Group = "0"
	}
	if a.SupplementaryGIDs != nil {
		app.SupplementaryGIDs = a.SupplementaryGIDs
	}
	if a.WorkingDir != "" {
		app.WorkingDirectory = a.WorkingDir
	}
	if app.WorkingDirectory != "" && !path.IsAbs(app.WorkingDirectory) {
		return nil, errdefs.InvalidArgument("working directory %q is not absolute", app.WorkingDirectory)
	}
	// Precedence, lowest first: the host's (with --inherit-env), the
	// image's, then the user's.
	var env types.Environment
	if o.InheritEnv {
		for _, kv := range o.HostEnv {
			// A name appc does not take (a shell's exported function,
			// say) is not passed on: the pod manifest could not hold it.
			if k, v, ok := strings.Cut(kv, "="); ok && validEnvName(k) {
				env.Set(k, v)
			}
		}
	}
	for _, e := range app.Environment {
		env.Set(e.Name, e.Value)
	}
	for _, e := range a.Env {
		env.Set(e.Name, e.Value)
	}
	app.Environment = env
	for _, iso := range a.Isolators {
		// A flag's isolator replaces the image's of the same name and
		// those it cannot be used with (a retain-set and a remove-set).
		names := []types.ACIdentifier{iso.Name}
		if other, ok := exclusiveIsolators[iso.Name]; ok {
			names = append(names, other)
		}
		app.Isolators.ReplaceIsolatorsByName(iso, names)
	}
	return &app, nil
}

// exclusiveIsolators pairs the isolators that cannot be used together
// (appc declares it for the seccomp sets only; it holds for capabilities
// too, and the stage1 refuses both).
var exclusiveIsolators = map[types.ACIdentifier]types.ACIdentifier{
	types.LinuxCapabilitiesRetainSetName: types.LinuxCapabilitiesRevokeSetName,
	types.LinuxCapabilitiesRevokeSetName: types.LinuxCapabilitiesRetainSetName,
	types.LinuxSeccompRetainSetName:      types.LinuxSeccompRemoveSetName,
	types.LinuxSeccompRemoveSetName:      types.LinuxSeccompRetainSetName,
}

func hasVolume(vs []types.Volume, name types.ACName) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}

// fromPodManifest takes the user's pod manifest: every image it names must
// be in the store or fetchable by ID.
func fromPodManifest(ctx context.Context, o Options, images map[string]*image) (*schema.PodManifest, error) {
	pm := o.PodManifest
	if len(pm.Apps) == 0 {
		return nil, errdefs.InvalidArgument("the pod manifest has no apps")
	}
	if err := validateVolumes(pm.Volumes); err != nil {
		return nil, err
	}
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		ref := ra.Image.ID.String()
		if ra.Image.ID.Empty() {
			if ra.Image.Name == nil {
				return nil, errdefs.InvalidArgument("pod manifest app %s names no image", ra.Name)
			}
			ref = ra.Image.Name.String()
		}
		im, err := fetchApp(ctx, o, ref, "")
		if err != nil {
			return nil, fmt.Errorf("pod manifest app %s: %w", ra.Name, err)
		}
		if err := CheckOSArch(im.manifest, runtime.GOOS, runtime.GOARCH); err != nil {
			return nil, fmt.Errorf("pod manifest app %s: %w", ra.Name, err)
		}
		id, err := types.NewHash(im.entry.ID)
		if err != nil {
			return nil, err
		}
		ra.Image.ID = *id
		if ra.Image.Name == nil {
			ra.Image.Name = &im.manifest.Name
		}
		if err := CheckAppName(ra.Name.String()); err != nil {
			return nil, fmt.Errorf("pod manifest: %w", err)
		}
		if ra.App == nil {
			if im.manifest.App == nil {
				return nil, errdefs.InvalidArgument("pod manifest app %s: its image has no app and the manifest gives none", ra.Name)
			}
			// The image's app, isolators and all: an app the manifest
			// spells out is the operator's choice, this one is not.
			if err := capabilityConsent(ra.Name.String(), im.manifest, o.AllCapabilities, grantInPodManifest); err != nil {
				return nil, fmt.Errorf("pod manifest: %w", err)
			}
			app := *im.manifest.App
			ra.App = &app
		}
		if _, dup := images[ra.Name.String()]; dup {
			return nil, errdefs.InvalidArgument("the pod manifest names app %s twice", ra.Name)
		}
		images[ra.Name.String()] = im
	}
	return pm, nil
}

// validateVolumes checks volumes before any pod exists: each passes
// CheckVolume, and a host volume's source must exist and must not be a
// symlink (which could be swapped to point elsewhere between this check
// and the mount).
func validateVolumes(vs []types.Volume) error {
	seen := map[types.ACName]bool{}
	for _, v := range vs {
		if seen[v.Name] {
			return errdefs.InvalidArgument("volume %s is defined twice", v.Name)
		}
		seen[v.Name] = true
		if err := CheckVolume(v); err != nil {
			return err
		}
		if v.Kind != "host" {
			continue
		}
		st, err := os.Lstat(v.Source)
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.InvalidArgument("volume %s: source %s does not exist", v.Name, v.Source)
		}
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return errdefs.InvalidArgument("volume %s: source %s is a symlink; name its target instead", v.Name, v.Source)
		}
	}
	return nil
}

// checkAppPID1 refuses an app that asks to be pid 1 of its PID namespace
// (stage1abi.AnnotationAppPID1) when the stage1 is older than
// InterfaceVersionAppPID1: it would start the app under an init of its
// own.
func checkAppPID1(pm *schema.PodManifest, stage1Name string, version int) error {
	if version >= stage1abi.InterfaceVersionAppPID1 {
		return nil
	}
	for _, ra := range pm.Apps {
		if v, ok := ra.Annotations.Get(stage1abi.AnnotationAppPID1); ok && v != "false" {
			return errdefs.FailedPrecondition("app %s: the stage1 %s speaks interface version %d and cannot make the app pid 1 of its PID namespace (%s needs %d)",
				ra.Name, stage1Name, version, stage1abi.AnnotationAppPID1, stage1abi.InterfaceVersionAppPID1)
		}
	}
	return nil
}
