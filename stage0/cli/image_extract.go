package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/aci"
	"github.com/nosecone/nscn/internal/errdefs"
)

var extractFlags = []cli.Flag{
	&cli.BoolFlag{Name: "rootfs-only", Usage: "write only the root filesystem, not the manifest"},
	&cli.BoolFlag{Name: "overwrite", Usage: "replace DIR if it exists"},
}

func imageExtractCommand() *cli.Command {
	return &cli.Command{
		Name:      "extract",
		Usage:     "extract a stored image, without its dependencies, into a directory",
		ArgsUsage: "IMAGE DIR",
		Description: `Writes the image's manifest and rootfs/ into DIR (with --rootfs-only, the
rootfs itself becomes DIR). Dependencies are not applied; see "image render" for that.
Ownership is kept when run as root.`,
		Flags: extractFlags,
		Action: handingOver(func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 2 {
				return usageErrorf("image extract: IMAGE and DIR are required")
			}
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			im, err := findImage(c.Context, s, c.Args().Get(0))
			if err != nil {
				return err
			}
			return intoFreshDir(c.Args().Get(1), c.Bool("overwrite"), func(tmp string) error {
				rootfs := tmp
				if !c.Bool("rootfs-only") {
					rootfs = filepath.Join(tmp, "rootfs")
					if err := os.WriteFile(filepath.Join(tmp, "manifest"), im.Manifest, 0o644); err != nil {
						return fmt.Errorf("write manifest: %w", err)
					}
					if err := os.Mkdir(rootfs, 0o755); err != nil {
						return fmt.Errorf("create rootfs: %w", err)
					}
				}
				return s.ExtractRootfs(c.Context, im, rootfs, aci.ExtractOptions{PreserveOwnership: os.Geteuid() == 0})
			})
		}),
	}
}

func imageRenderCommand() *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "render a stored image with its dependencies",
		ArgsUsage: "IMAGE [DIR]",
		Description: `Renders the image as the appc spec prescribes for an app's root filesystem:
dependencies first, depth-first, later layers overriding earlier ones, each image's
pathWhitelist applied. The result is cached in the tree store and reused by pods.
Without DIR, prints the tree's ID and path; with DIR, also writes a copy there
(manifest and rootfs/, or only the rootfs with --rootfs-only).`,
		Flags: extractFlags,
		Action: handingOver(func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() < 1 || c.NArg() > 2 {
				return usageErrorf("image render: IMAGE and an optional DIR are required")
			}
			s, err := openStore(c.Context, g)
			if err != nil {
				return err
			}
			g.Timeline.Mark("store-opened")
			im, err := findImage(c.Context, s, c.Args().Get(0))
			if err != nil {
				return err
			}
			g.Timeline.Mark("image-found")
			t, err := s.Trees.Render(c.Context, im.ID)
			if err != nil {
				return err
			}
			g.Timeline.Mark("tree-rendered")
			if err := s.MarkUsed(c.Context, im.Key); err != nil {
				return err
			}
			g.Timeline.Mark("image-marked-used")
			if c.NArg() == 1 {
				_, err := fmt.Fprintf(g.Stdout, "%s\t%s\n", t.Key, t.Path)
				return err
			}
			return intoFreshDir(c.Args().Get(1), c.Bool("overwrite"), func(tmp string) error {
				return s.Trees.RenderTo(c.Context, im.ID, tmp, c.Bool("rootfs-only"))
			})
		}),
	}
}

// intoFreshDir fills a scratch directory beside dir with fill and renames
// it to dir, so a failure never leaves a half-written dir behind.
func intoFreshDir(dir string, overwrite bool, fill func(tmp string) error) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		if !overwrite {
			return errdefs.AlreadyExists("%s exists (use --overwrite to replace it)", dir)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("create scratch dir for %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err = os.Chmod(tmp, 0o755); err != nil { //nolint:gosec // G302: a directory, which needs x to be searched
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = fill(tmp); err != nil {
		return err
	}
	if overwrite {
		if err = os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove old %s: %w", dir, err)
		}
	}
	if err = os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move into %s: %w", dir, err)
	}
	return nil
}
