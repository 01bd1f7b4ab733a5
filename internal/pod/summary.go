package pod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Summary is what a listing of pods shows of one pod (nscn list, status),
// as (*Pod).Summary reads it.
type Summary struct {
	// Manifest is the pod manifest; nil before stage0 wrote it.
	Manifest *schema.PodManifest
	// Created, Started and Finished are what the methods of the same
	// names return; each is zero where its method fails with
	// errdefs.ErrNotFound (a pod that never started has no Started).
	Created, Started, Finished time.Time
	// ExitStatuses is what AppExitStatuses returns.
	ExitStatuses map[string]int
	// Ready is what Ready returns; zero where it fails.
	Ready time.Time
}

// Summary reads, with a single open of the pod directory and a single
// read of each file, what Manifest, Created and Started return, and, with
// full, what Finished, AppExitStatuses and Ready return. It is the cheap
// way to describe many pods. It uses the State snapshot, like Finished.
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
	s.Manifest, err = readManifest(root, p.UUID)
	note(err)
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
