package prepare

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/mountplan"
	"github.com/nosecone/nscn/internal/pod"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// layout fills the pod directory. The pod manifest is written last: a pod
// directory with a manifest is complete.
func layout(ctx context.Context, o Options, log *slog.Logger, p *pod.Pod, s1 *image, pm *schema.PodManifest, images map[string]*image) error {
	dir := p.Path
	if err := os.MkdirAll(filepath.Join(dir, stage1abi.Stage1Dir), 0o755); err != nil {
		return fmt.Errorf("create stage1 dir: %w", err)
	}
	if err := writeFile(filepath.Join(dir, stage1abi.Stage1ManifestRel), s1.entry.Manifest); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, stage1abi.Stage1TreeIDFile), []byte(s1.tree.Key)); err != nil {
		return err
	}
	cfg := mountplan.Config{PodDir: dir, Stage1Rootfs: s1.tree.Rootfs}
	for _, ra := range pm.Apps {
		im := images[ra.Name.String()]
		info := filepath.Join(dir, stage1abi.AppInfoDir(ra.Name.String()))
		if err := os.MkdirAll(info, 0o755); err != nil {
			return fmt.Errorf("create app info dir: %w", err)
		}
		if err := writeFile(filepath.Join(info, stage1abi.AppManifestFile), im.entry.Manifest); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(info, stage1abi.AppTreeIDFile), []byte(im.tree.Key)); err != nil {
			return err
		}
		cfg.Apps = append(cfg.Apps, mountplan.App{Name: ra.Name.String(), Rootfs: im.tree.Rootfs})
	}
	m := o.Mounter
	if m == nil {
		m = mountplan.NewLogging(mountplan.Kernel{}, log)
	}
	mode, why, err := mountplan.ApplyOverlayOrCopy(ctx, cfg, m)
	if err != nil {
		return err
	}
	if mode == mountplan.Copy {
		log.Info("overlayfs unavailable, copied the rootfses", "pod", p.UUID, "reason", why)
	}
	b, err := json.Marshal(pm)
	if err != nil {
		return fmt.Errorf("encode pod manifest: %w", err)
	}
	return writeFile(filepath.Join(dir, stage1abi.PodManifestFile), b)
}

// writeFile writes a new file of the pod directory, durably.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return f.Close()
}
