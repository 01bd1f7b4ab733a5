package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/blob"
)

func imageGCCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "remove unused images and rendered trees",
		Description: `Removes rendered trees and images that no pod uses and that were not used
within --grace-period, blobs no index entry names, and what interrupted fetches and
renders left behind.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace-period", Value: 24 * time.Hour, Usage: "keep images and trees used more recently than this"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be removed"},
		},
		Action: func(c *cli.Context) error {
			g := globals(c)
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			trees, images, err := podReferences(c.Context, g.Dir, s)
			if err != nil {
				return err
			}
			rep, err := s.GC(c.Context, store.GCOptions{
				GracePeriod: c.Duration("grace-period"),
				InUseTrees:  trees,
				InUseImages: images,
				DryRun:      c.Bool("dry-run"),
			})
			if rep != nil {
				verb := "removed"
				if c.Bool("dry-run") {
					verb = "would remove"
				}
				for _, k := range rep.Trees {
					_, _ = fmt.Fprintf(g.Stderr, "%s tree %s\n", verb, k)
				}
				for _, k := range rep.Images {
					_, _ = fmt.Fprintf(g.Stderr, "%s image %s\n", verb, k)
				}
				for _, k := range rep.OrphanBlobs {
					_, _ = fmt.Fprintf(g.Stderr, "removed orphan blob %s\n", k)
				}
			}
			return err
		},
	}
}

// podReferences collects the trees and images that pods on disk use, in
// any state, from the tree IDs stage0 records in each pod directory.
func podReferences(ctx context.Context, dataDir string, s *store.Store) (trees, images map[string]bool, err error) {
	trees, images = map[string]bool{}, map[string]bool{}
	patterns := []string{
		filepath.Join(dataDir, "pods", "*", "*", stage1abi.AppsInfoDir, "*", stage1abi.AppTreeIDFile),
		filepath.Join(dataDir, "pods", "*", "*", stage1abi.Stage1TreeIDFile),
	}
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil {
			return nil, nil, fmt.Errorf("scan pods: %w", err)
		}
		for _, m := range matches {
			b, err := os.ReadFile(m) //nolint:gosec // G304: a pod manifest under the data directory
			if err != nil {
				continue // the pod went away while we looked
			}
			trees[strings.TrimSpace(string(b))] = true
		}
	}
	all, err := s.Trees.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range all {
		if trees[t.Key] {
			for _, id := range t.ImageIDs {
				images[blob.KeyFromID(id)] = true
			}
		}
	}
	return trees, images, nil
}
