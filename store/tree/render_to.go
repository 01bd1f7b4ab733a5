package tree

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RenderTo renders imageID with its dependencies into dest, an existing
// empty directory outside the store: the manifest and rootfs/, or with
// rootfsOnly the root filesystem itself. It is `nscn image render DIR`;
// nothing is cached.
func (s *Store) RenderTo(ctx context.Context, imageID, dest string, rootfsOnly bool) error {
	layers, err := s.Plan(ctx, imageID)
	if err != nil {
		return err
	}
	rootfs := dest
	if !rootfsOnly {
		m, err := s.src.Manifest(ctx, imageID)
		if err != nil {
			return fmt.Errorf("read manifest of image %s: %w", imageID, err)
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode manifest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dest, manifestFile), mb, 0o644); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
		rootfs = filepath.Join(dest, rootfsDir)
		if err := os.Mkdir(rootfs, 0o755); err != nil {
			return fmt.Errorf("create rootfs: %w", err)
		}
	}
	for i, l := range layers {
		if err := s.extractLayer(ctx, l, rootfs); err != nil {
			return fmt.Errorf("render image %s: layer %d of %d, image %s (%s): %w", imageID, i+1, len(layers), l.Name, l.ImageID, err)
		}
	}
	return nil
}
