package stage1

import (
	"encoding/json"
	"path/filepath"

	"github.com/nosecone/nscn/internal/configdir"
	"github.com/nosecone/nscn/internal/errdefs"
)

// pathsEntry is one paths.d file, rkt's "paths" configuration kind. Only
// its stage1-images directory is read here; the keys are nscn's
// (nscnKind, nscnVersion) or rkt's (rktKind, rktVersion), so that an rkt
// host's file works as it is.
type pathsEntry struct {
	Kind          string `json:"nscnKind"`
	Version       string `json:"nscnVersion"`
	RktKind       string `json:"rktKind"`
	RktVersion    string `json:"rktVersion"`
	Stage1ImgsDir string `json:"stage1-images"`
}

// ImageDirs returns the directories a --stage1-from-dir name and the
// build's default image are looked up in, in order: binDir (beside the
// nscn binary, for a build tree; skipped when empty), then the
// stage1-images directory of paths.d in the config dirs, or, when no
// paths.d file sets one, SystemImageDir (the directory compiled in).
//
// As with stage1.d, the first config dir holding a paths.d file that sets
// stage1-images decides, and within a dir the files are read in name
// order, the last one setting it winning (rkt's habit: a later file
// overrides an earlier one).
func ImageDirs(configDirs []string, binDir string) ([]string, error) {
	var dirs []string
	if binDir != "" {
		dirs = append(dirs, binDir)
	}
	configured, err := configuredImageDir(configDirs)
	if err != nil {
		return nil, err
	}
	if configured != "" {
		return append(dirs, configured), nil
	}
	return append(dirs, SystemImageDir), nil
}

func configuredImageDir(configDirs []string) (string, error) {
	for _, d := range configDirs {
		files, err := configdir.Read(filepath.Join(d, "paths.d"), "paths configuration")
		if err != nil {
			return "", err
		}
		dir := ""
		for _, f := range files {
			file, b := f.Path, f.Data
			var p pathsEntry
			if err := json.Unmarshal(b, &p); err != nil {
				return "", errdefs.InvalidArgument("paths configuration %s: %v", file, err)
			}
			kind, version := p.Kind, p.Version
			if kind == "" && version == "" {
				kind, version = p.RktKind, p.RktVersion
			}
			if kind != "paths" || version != "v1" {
				return "", errdefs.InvalidArgument(`paths configuration %s: want "nscnKind" (or "rktKind"): "paths" and version "v1"`, file)
			}
			if p.Stage1ImgsDir == "" {
				continue
			}
			if !filepath.IsAbs(p.Stage1ImgsDir) {
				return "", errdefs.InvalidArgument("paths configuration %s: stage1-images %q is not an absolute path", file, p.Stage1ImgsDir)
			}
			dir = filepath.Clean(p.Stage1ImgsDir)
		}
		if dir != "" {
			return dir, nil
		}
	}
	return "", nil
}
