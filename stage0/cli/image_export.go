package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
)

func imageExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a stored image to an ACI file",
		ArgsUsage: "IMAGE OUTPUT.aci",
		Description: `Writes the image's uncompressed ACI (the exact tar its ID is the hash of)
to OUTPUT.aci. An existing file is refused unless --overwrite.`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "overwrite", Usage: "replace OUTPUT if it exists"}},
		Action: func(c *cli.Context) error {
			g := globals(c)
			if c.NArg() != 2 {
				return usageErrorf("image export: IMAGE and OUTPUT are required")
			}
			s := openStoreReadOnly(c.Context, g)
			im, err := findImage(c.Context, s, c.Args().Get(0))
			if err != nil {
				return err
			}
			if im.OCI != nil {
				return errdefs.Newf(errdefs.ErrNotImplemented, "image %s (%s) is an OCI image, and image export writes ACIs: use image extract or image render for its files", im.Key, im.OCI.Reference)
			}
			src, err := s.Blobs.Open(c.Context, im.Key)
			if err != nil {
				return err
			}
			defer func() { _ = src.Close() }()
			return writeFileAtomic(c.Args().Get(1), c.Bool("overwrite"), src)
		},
	}
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so a failure never leaves a half-written output.
func writeFileAtomic(path string, overwrite bool, r io.Reader) (err error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return errdefs.AlreadyExists("%s exists (use --overwrite to replace it)", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", path, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}
