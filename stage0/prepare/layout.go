package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/datadir"
	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// layout fills the pod directory and returns the files it wrote. The pod
// manifest is written last: a pod directory with a manifest is complete.
func layout(ctx context.Context, o Options, log *slog.Logger, p *pod.Pod, s1 *image, pm *schema.PodManifest, images map[string]*image) (written []string, err error) {
	dir := p.Path
	write := func(path string, data []byte) error {
		if err := writeFile(path, data); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	// The stage1 directory and the overlay directory hold the pod's
	// mounted root filesystems and their upper layers: setuid programs of
	// the images and whatever the apps write. They stay root's even
	// where the nscn group may read the pod directory
	// (Documentation/security.md, "Least privilege on disk").
	for _, d := range []string{stage1abi.Stage1Dir, stage1abi.OverlayDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create %s dir: %w", d, err)
		}
	}
	if err := write(filepath.Join(dir, stage1abi.Stage1ManifestRel), s1.entry.Manifest); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(dir, stage1abi.Stage1TreeIDFile), []byte(s1.tree.Key)); err != nil {
		return nil, err
	}
	cfg := mountplan.Config{PodDir: dir, Stage1Rootfs: s1.tree.Rootfs, Stage1Empty: s1.emptyRootfs, MetaCopy: o.PrivateUsers}
	for _, ra := range pm.Apps {
		im := images[ra.Name.String()]
		info := filepath.Join(dir, stage1abi.AppInfoDir(ra.Name.String()))
		if err := datadir.MkdirAll(info, datadir.DirMode); err != nil {
			return nil, fmt.Errorf("create app info dir: %w", err)
		}
		if err := write(filepath.Join(info, stage1abi.AppManifestFile), im.entry.Manifest); err != nil {
			return nil, err
		}
		if err := write(filepath.Join(info, stage1abi.AppTreeIDFile), []byte(im.tree.Key)); err != nil {
			return nil, err
		}
		cfg.Apps = append(cfg.Apps, mountplan.App{Name: ra.Name.String(), Rootfs: im.tree.Rootfs})
	}
	m := o.Mounter
	if m == nil {
		m = mountplan.NewLogging(mountplan.Kernel{}, log)
	}
	mode, why, err := applyRootfses(ctx, cfg, m, o.NoOverlay)
	if err != nil {
		return nil, err
	}
	if mode == mountplan.Copy {
		if !o.NoOverlay {
			log.Info("overlayfs unavailable, copied the rootfses", "pod", p.UUID, "reason", why)
		}
		// A copy has no upper layers: the overlay directory is empty or
		// was removed with the failed attempt.
		if err := os.Remove(filepath.Join(dir, stage1abi.OverlayDir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the unused overlay dir: %w", err)
		}
	}
	b, err := json.Marshal(pm)
	if err != nil {
		return nil, fmt.Errorf("encode pod manifest: %w", err)
	}
	if err := write(filepath.Join(dir, stage1abi.PodManifestFile), b); err != nil {
		return nil, err
	}
	return written, nil
}

// writeFile writes a new file of the pod directory, readable by the group
// of its directory. It does not fsync: a pod that is only being prepared
// is garbage after a power loss anyway, and Prepared.Sync makes the files
// durable when the pod must outlive one.
func writeFile(path string, data []byte) error {
	f, err := datadir.CreateNew(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if err := datadir.SetGroupFrom(f, filepath.Dir(path)); err != nil {
		_ = f.Close()
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}

// Sync makes the files preparation wrote durable, with the directories
// that name them, for a pod that is to outlive a power loss: one moved to
// prepared/ for a later run-prepared. nscn run skips it: its pod dies with
// the machine anyway.
func (p *Prepared) Sync() error {
	files := append([]string{filepath.Join(p.Pod.Path, stage1abi.CreatedFile)}, p.written...)
	// Every directory from a file's up to the pod directory: each names
	// the one below it.
	dirs := []string{p.Pod.Path}
	for _, f := range files {
		for d := filepath.Dir(f); d != p.Pod.Path && strings.HasPrefix(d, p.Pod.Path+"/"); d = filepath.Dir(d) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	for _, name := range append(files, dirs...) {
		if err := syncPath(name); err != nil {
			return fmt.Errorf("pod %s: %w", p.Pod.UUID, err)
		}
	}
	return nil
}

func syncPath(name string) error {
	f, err := os.Open(name) //nolint:gosec // G304: a file in the pod directory
	if err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(name), err)
	}
	return nil
}

// applyRootfses lays out the root filesystems: overlays where they work
// (mountplan.ApplyOverlayOrCopy), or copies with noOverlay (--no-overlay,
// as rkt's: for a filesystem overlayfs misbehaves on, or a pod whose
// files must not depend on the tree store).
func applyRootfses(ctx context.Context, cfg mountplan.Config, m mountplan.Mounter, noOverlay bool) (mountplan.Mode, error, error) {
	if !noOverlay {
		return mountplan.ApplyOverlayOrCopy(ctx, cfg, m)
	}
	cfg.Mode = mountplan.Copy
	plan, err := mountplan.Build(cfg)
	if err != nil {
		return 0, nil, err
	}
	if err := mountplan.Apply(ctx, plan, m); err != nil {
		return 0, nil, err
	}
	return mountplan.Copy, nil, nil
}
