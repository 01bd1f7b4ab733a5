package prepare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// AddedApp is an app AddApp laid out in a running pod's directory.
type AddedApp struct {
	// Manifest is the pod manifest with the app added: the caller
	// writes it (under the pod's apps lock) once the stage1 took the app.
	Manifest *schema.PodManifest
	// Name is the app's name in the pod.
	Name string
	// TreeKey is the key of the app's rendered tree.
	TreeKey string
}

// AddApp fetches and renders the image of a for the mutable pod whose
// directory is podDir and whose manifest is pm, checks a as run checks
// each app (name, capabilities, volumes of the pod), and lays the app out
// as prepare does: appsinfo/NAME and the app's rootfs, mounted (or
// copied, in a pod prepared without overlays) at
// stage1/rootfs/opt/stage2/NAME/rootfs in stage0's mount namespace. Only
// o's Store, Fetcher, Log, Mounter, AllCapabilities, InheritEnv and
// HostEnv are used. On failure nothing of the app is left behind;
// RemoveApp undoes a success.
func AddApp(ctx context.Context, o Options, podDir string, pm *schema.PodManifest, a App) (_ *AddedApp, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	taken := func(n string) bool {
		for _, ra := range pm.Apps {
			if ra.Name.String() == n {
				return true
			}
		}
		return false
	}
	ra, im, err := newRuntimeApp(ctx, o, 0, a, pm.Volumes, taken)
	if err != nil {
		return nil, err
	}
	name := ra.Name.String()
	unlock, err := o.Store.LockReferences(ctx, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if im.tree, err = o.Store.Trees.Render(ctx, im.entry.ID); err != nil {
		return nil, fmt.Errorf("render image %s of app %s: %w", im.entry.Name, name, explainLimit(err))
	}
	if err := primaryGroup(im, ra.App, a.Group == ""); err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			if rerr := RemoveApp(context.WithoutCancel(ctx), podDir, name, o.Mounter); rerr != nil {
				log.Warn("undo the app's layout", "app", name, "error", rerr)
			}
		}
	}()
	info := filepath.Join(podDir, stage1abi.AppInfoDir(name))
	if err := datadir.MkdirAll(info, datadir.DirMode); err != nil {
		return nil, fmt.Errorf("create app info dir: %w", err)
	}
	if err := writeFile(filepath.Join(info, stage1abi.AppManifestFile), im.entry.Manifest); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(info, stage1abi.AppTreeIDFile), []byte(im.tree.Key)); err != nil {
		return nil, err
	}
	if len(a.VolumeTrees) > 0 {
		if err := writeFile(filepath.Join(info, stage1abi.AppVolumeTreesFile), []byte(strings.Join(a.VolumeTrees, "\n")+"\n")); err != nil {
			return nil, err
		}
	}
	plan, err := appPlan(podDir, name, im.tree.Rootfs)
	if err != nil {
		return nil, err
	}
	m := o.Mounter
	if m == nil {
		m = mountplan.NewLogging(mountplan.Kernel{}, log)
	}
	if err := mountplan.Apply(ctx, plan, m); err != nil {
		return nil, fmt.Errorf("lay out the rootfs of app %s: %w", name, err)
	}
	out := *pm
	out.Apps = append(append(schema.AppList(nil), pm.Apps...), ra)
	return &AddedApp{Manifest: &out, Name: name, TreeKey: im.tree.Key}, nil
}

// appPlan is the mount plan of one app's rootfs in a pod that runs: an
// overlay, or a copy when the pod has no overlay directory (prepared with
// --no-overlay, or where overlayfs failed).
func appPlan(podDir, name, rootfs string) (mountplan.Plan, error) {
	mode := mountplan.Overlay
	if _, err := os.Stat(filepath.Join(podDir, stage1abi.OverlayDir)); errors.Is(err, fs.ErrNotExist) {
		mode = mountplan.Copy
	}
	full, err := mountplan.Build(mountplan.Config{PodDir: podDir, Stage1Rootfs: rootfs, Apps: []mountplan.App{{Name: name, Rootfs: rootfs}}, Mode: mode})
	if err != nil {
		return mountplan.Plan{}, err
	}
	// The stage1's steps come first and are done: keep the app's.
	target := filepath.Join(podDir, stage1abi.AppRootfs(name))
	upper, _ := mountplan.AppOverlayDirs(podDir, name)
	p := mountplan.Plan{PodDir: podDir}
	for _, st := range full.Steps {
		if st.Path == target || st.Path == filepath.Dir(target) || filepath.Dir(st.Path) == filepath.Dir(upper) {
			p.Steps = append(p.Steps, st)
		}
	}
	return p, nil
}

// RemoveApp undoes AddApp's layout of app name in podDir: it unmounts the
// app's rootfs and everything below it in stage0's mount namespace, and
// removes the rootfs directory, its overlay directories and appsinfo/NAME.
// What is absent already is skipped.
func RemoveApp(ctx context.Context, podDir, name string, m mountplan.Mounter) error {
	_ = m // the kernel's unmounts: UnmountAll reads the mount table
	dir := filepath.Join(podDir, stage1abi.Stage2Dir(name))
	if err := mountplan.UnmountAll(ctx, dir); err != nil {
		return fmt.Errorf("unmount app %s: %w", name, err)
	}
	upper, _ := mountplan.AppOverlayDirs(podDir, name)
	var errs []error
	for _, p := range []string{dir, filepath.Dir(upper), filepath.Join(podDir, stage1abi.AppInfoDir(name))} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
