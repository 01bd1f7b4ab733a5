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
		if err := writeFileSync(filepath.Join(dest, manifestFile), mb, 0o644); err != nil {
			return err
		}
		rootfs = filepath.Join(dest, rootfsDir)
		if err := os.Mkdir(rootfs, 0o755); err != nil {
			return fmt.Errorf("create rootfs: %w", err)
		}
	}
	if err := s.extractLayers(ctx, layers, rootfs, nil, nil); err != nil {
		return fmt.Errorf("render image %s: %w", imageID, err)
	}
	return nil
}
