package cli

import (
	"context"
	"errors"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/stage0/localimage"
	"github.com/nosecone/nscn/store"
	"github.com/nosecone/nscn/store/index"
)

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "operate on the images in the store",
		Subcommands: []*cli.Command{
			imageListCommand(),
			imageRmCommand(),
			imageCatManifestCommand(),
			imageExportCommand(),
			imageExtractCommand(),
			imageRenderCommand(),
			imageVerifyCommand(),
			imageGCCommand(),
		},
	}
}

// findImage resolves what the image subcommands take, as rkt's did: an
// image ID (sha512-…, or an unambiguous prefix of one), or an image name
// with optional labels (example.com/app, example.com/app:1.0,
// example.com/app,version=1.0,arch=amd64), which names the newest stored
// image of that name with those labels. It never fetches. The error is
// errdefs.ErrNotFound only when no stored image matches.
func findImage(ctx context.Context, s *store.Store, ref string) (*index.Image, error) {
	if isImageID(ref) {
		return s.Get(ctx, ref)
	}
	name, labels, err := localimage.ParseName(ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("image %q is neither an image ID (sha512-…) nor an image name: %v", ref, err)
	}
	im, err := s.FindByName(ctx, name, labels)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, errdefs.NotFound("no image named %s is in the store (nscn image list shows what is)", ref)
	}
	return im, err
}

// isImageID tells an image ID or ID prefix from an image name: an ID
// begins with "sha512-" (any case), which no appc name does. "" and
// "sha512" count as IDs, so that the store refuses them as too short.
func isImageID(ref string) bool {
	l := strings.ToLower(ref)
	return strings.HasPrefix(l, "sha512-") || strings.HasPrefix("sha512-", l)
}
