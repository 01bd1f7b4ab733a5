package pod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Summary is what a listing of pods shows of one pod (nscn list, status),
// as (*Pod).Summary reads it.
type Summary struct {
	// Manifest is the pod manifest, read with full only; nil before
	// stage0 wrote it.
	Manifest *schema.PodManifest
	// Apps are the pod manifest's apps as a listing shows them, in
	// manifest order, with or without full; nil before stage0 wrote the
	// manifest.
	Apps []AppSummary
	// Created, Started and Finished are what the methods of the same
	// names return; each is zero where its method fails with
	// errdefs.ErrNotFound (a pod that never started has no Started).
	Created, Started, Finished time.Time
	// ExitStatuses is what AppExitStatuses returns.
	ExitStatuses map[string]int
	// Ready is what Ready returns; zero where it fails.
	Ready time.Time
}

// AppSummary is an app of the pod manifest as nscn list shows it.
type AppSummary struct {
	Name      string
	ImageName string // "" when the manifest names none
	ImageID   string // "" when the manifest has none
	// ImageVersion is the image's version label, "" without one.
	ImageVersion string
}

// Summary reads, with a single open of the pod directory and a single
// read of each file, what Created and Started return and the apps of the
// pod manifest, and, with full, what Manifest, Finished, AppExitStatuses
// and Ready return. It is the cheap way to describe many pods. It uses
// the State snapshot, like Finished.
//
// Without full the manifest is decoded into the few strings of Apps and
// not validated as appc's types do (names, identifiers, labels): that
// validation was over half the CPU time of listing a thousand pods, and
// the manifest is stage0's own, written once the pod was prepared. A
// manifest that is not JSON is still a problem reported.
//
// A missing file leaves its field zero. If the pod itself is gone, the
// error is errdefs.ErrNotFound and the Summary nil. Problems with single
// files (an invalid manifest, an unreadable status) are joined in the
// error returned along with the Summary, whose other fields are filled
// in.
func (p *Pod) Summary(ctx context.Context, full bool) (*Summary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := p.openRoot()
	if err != nil {
		return nil, err
	}
	defer func() { _ = root.Close() }()
	s := &Summary{}
	var errs []error
	note := func(err error) {
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, err)
		}
	}

	if b, _, err := readRegular(root, stage1abi.CreatedFile, maxSmallFile); err != nil {
		note(fmt.Errorf("read creation time of pod %s: %w", p.UUID, err))
	} else if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err != nil {
		note(errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("read creation time of pod %s: %w", p.UUID, err)))
	} else {
		s.Created = t
	}
	if full {
		s.Manifest, err = readManifest(root, p.UUID)
		note(err)
		if s.Manifest != nil {
			s.Apps = appSummaries(s.Manifest)
		}
	} else {
		s.Apps, err = readManifestApps(root, p.UUID)
		note(err)
	}
	for _, name := range []string{stage1abi.PIDFile, stage1abi.PPIDFile} {
		fi, err := root.Lstat(name)
		if err == nil {
			s.Started = fi.ModTime()
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			note(fmt.Errorf("read start time of pod %s: %w", p.UUID, err))
			break
		}
	}
	if !full {
		return s, errors.Join(errs...)
	}

	if t, err := readyTime(root, p.UUID); err != nil {
		note(err)
	} else {
		s.Ready = t
	}
	var newest time.Time // of the app status files
	if s.Manifest != nil {
		s.ExitStatuses = make(map[string]int, len(s.Manifest.Apps))
		for _, a := range s.Manifest.Apps {
			name := a.Name.String()
			b, fi, err := readAppStatus(root, name)
			if err != nil {
				note(fmt.Errorf("read exit status of app %s of pod %s: %w", name, p.UUID, err))
				continue
			}
			if fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
			st, err := parseDecimal(b, 0)
			if err != nil {
				note(fmt.Errorf("read exit status of app %s of pod %s: %w", name, p.UUID, err))
				continue
			}
			s.ExitStatuses[name] = st
		}
	}
	if p.State != Running {
		// As Finished: the exited marker, else the newest status, else
		// the time of the gc mark.
		if fi, err := root.Lstat(stage1abi.ExitedMarker); err == nil {
			s.Finished = fi.ModTime()
		} else if !newest.IsZero() {
			s.Finished = newest
		} else if p.dir == dirExitedGarbage || p.dir == dirGarbage {
			t, err := p.GCMarked(ctx)
			note(err)
			s.Finished = t
		}
	}
	return s, errors.Join(errs...)
}

// appSummaries returns the apps of m as Summary lists them.
func appSummaries(m *schema.PodManifest) []AppSummary {
	apps := make([]AppSummary, len(m.Apps))
	for i, a := range m.Apps {
		as := AppSummary{Name: a.Name.String()}
		if a.Image.Name != nil {
			as.ImageName = a.Image.Name.String()
		}
		as.ImageVersion, _ = a.Image.Labels.Get("version")
		if !a.Image.ID.Empty() {
			as.ImageID = a.Image.ID.String()
		}
		apps[i] = as
	}
	return apps
}

// manifestApps is the part of a pod manifest a listing shows, in appc's
// field names, as plain strings.
type manifestApps struct {
	Apps []struct {
		Name  string `json:"name"`
		Image struct {
			Name   string `json:"name"`
			ID     string `json:"id"`
			Labels []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"labels"`
		} `json:"image"`
	} `json:"apps"`
}

// readManifestApps reads the apps of the pod manifest, decoded as
// manifestApps (Summary says why not as appc's types). A pod that has
// no manifest yet is errdefs.ErrNotFound; one that is not JSON
// errdefs.ErrInvalidArgument.
func readManifestApps(root *os.Root, uuid string) ([]AppSummary, error) {
	b, _, err := readRegular(root, stage1abi.PodManifestFile, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("read manifest of pod %s: %w", uuid, err)
	}
	var m manifestApps
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("parse manifest of pod %s: %w", uuid, err))
	}
	apps := make([]AppSummary, len(m.Apps))
	for i, a := range m.Apps {
		as := AppSummary{Name: a.Name, ImageName: a.Image.Name, ImageID: a.Image.ID}
		for _, l := range a.Image.Labels {
			if l.Name == "version" {
				as.ImageVersion = l.Value
				break
			}
		}
		apps[i] = as
	}
	return apps, nil
}
