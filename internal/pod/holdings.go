package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Holdings are what a pod holds in the image store, as stage0 recorded it
// in the pod directory: the rendered trees it was prepared with, and the
// images its apps run. A pod needs them until it is gone: run-prepared
// mounts nothing new but executes its stage1 from the stage1's tree, and
// enter, stop, gc and rm do too (a stage1 entrypoint is never executed
// from the pod's own, writable, copy).
type Holdings struct {
	UUID string
	// Trees are the keys of the pod's trees: its stage1's
	// (stage1abi.Stage1TreeIDFile) and each app's
	// (stage1abi.AppTreeIDFile).
	Trees []string
	// Images are the IDs of the images of the pod manifest's apps. The
	// images a tree was rendered from (dependencies, and the stage1
	// image) are the store's to derive from Trees.
	Images []string
}

// ListHoldings returns the holdings of every pod of dataDir, in every
// state from embryo to garbage: a pod holds its trees and images from the
// moment prepare records them in its directory until the directory is
// deleted. The state directories are scanned in transition order, so a
// pod that moves during the scan is found where it went; one deleted
// meanwhile is left out. The caller keeps new pods from recording new
// holdings during the call if it needs a complete answer (store's
// LockReferences).
func ListHoldings(ctx context.Context, dataDir string) ([]Holdings, error) {
	dataDir, err := absDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	byUUID := map[string]*Holdings{}
	var order []string
	for _, d := range stateDirs {
		names, err := readNames(stateDirPath(dataDir, d))
		if err != nil {
			return nil, fmt.Errorf("list pod holdings: %w", err)
		}
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("list pod holdings: %w", err)
			}
			if !validUUID(name) {
				continue
			}
			h := byUUID[name]
			if h == nil {
				h = &Holdings{UUID: name}
				byUUID[name] = h
				order = append(order, name)
			}
			if err := h.read(podPath(dataDir, d, name)); err != nil {
				return nil, fmt.Errorf("list pod holdings: pod %s: %w", name, err)
			}
		}
	}
	slices.Sort(order)
	out := make([]Holdings, 0, len(order))
	for _, id := range order {
		if h := byUUID[id]; len(h.Trees)+len(h.Images) > 0 {
			out = append(out, *h)
		}
	}
	return out, nil
}

// read adds what the pod directory at dir records. Files that are not
// there (not written yet, or the pod moved on) add nothing.
func (h *Holdings) read(dir string) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pod directory: %w", err)
	}
	defer func() { _ = root.Close() }()
	files := []string{stage1abi.Stage1TreeIDFile}
	apps, err := readNames(filepath.Join(dir, stage1abi.AppsInfoDir))
	if err != nil {
		return err
	}
	for _, a := range apps {
		files = append(files, filepath.Join(stage1abi.AppInfoDir(a), stage1abi.AppTreeIDFile),
			filepath.Join(stage1abi.AppInfoDir(a), stage1abi.AppVolumeTreesFile))
	}
	for _, f := range files {
		b, _, err := readRegular(root, f, maxSmallFile)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		// One key, or one a line (AppVolumeTreesFile).
		for _, key := range strings.Fields(string(b)) {
			if !slices.Contains(h.Trees, key) {
				h.Trees = append(h.Trees, key)
			}
		}
	}
	b, _, err := readRegular(root, stage1abi.PodManifestFile, maxManifest)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pod manifest: %w", err)
	}
	// Only the image IDs: a manifest the appc schema would reject still
	// names the images the pod holds.
	var pm struct {
		Apps []struct {
			Image struct {
				ID string `json:"id"`
			} `json:"image"`
		} `json:"apps"`
	}
	if json.Unmarshal(b, &pm) != nil {
		return nil // an unreadable manifest names no image; the trees still count
	}
	for _, a := range pm.Apps {
		if a.Image.ID != "" && !slices.Contains(h.Images, a.Image.ID) {
			h.Images = append(h.Images, a.Image.ID)
		}
	}
	return nil
}
