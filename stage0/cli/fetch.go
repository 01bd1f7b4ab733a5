package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/stage0/localimage"
)

func fetchCommand() *cli.Command {
	return &cli.Command{
		Name:      "fetch",
		Usage:     "fetch images into the store and print their IDs",
		ArgsUsage: "IMAGE...",
		Description: `Fetches each IMAGE into the store and prints its image ID on stdout, one per line.

IMAGE is a path to an ACI (plain, gzip, bzip2, xz or zstd), a file:// or https:// URL
(http:// only with --insecure-options=http), an image ID (sha512-…, or an unambiguous
prefix of one), an image name (example.com/app:1.0 or example.com/app,version=1.0),
or an OCI or Docker image: docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST],
oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REPO:TAG] (see
Documentation/images.md). An OCI or Docker image carries no signature: it is taken
when pinned by digest (verified end to end), and otherwise only with
--insecure-options=image. From an image index, --os and --arch pick the image
(default linux/amd64).

An image name is taken from the store when it holds a matching image and the pull
policy is new or never; otherwise it is found by appc discovery: nscn reads the
ac-discovery meta tags of https://NAME?ac-discovery=1 (walking up NAME's path),
fills the templates ({name}, {version} = latest when not given, {os}, {arch} = the
host's when not given, {ext}), and fetches the image and its signature from there.
The image's name and labels must match what was asked. Its dependencies missing from
the store are discovered too. Plain http is used only with --insecure-options=http.
When no key is trusted for the name, --trust-keys-from-https trusts the keys its
discovery page names; otherwise see "nscn trust --prefix NAME". See
Documentation/discovery.md.

The detached armored OpenPGP signature is read from IMAGE.asc (or --signature) and
checked against the keys trusted for the image's name (see "nscn trust"); an unsigned
or badly signed image is refused unless --insecure-options=image is given.

For URLs, the store remembers the ETag and Cache-Control max-age of each download:
--pull-policy=update (the default) revalidates with If-None-Match once max-age has
elapsed, new uses any stored copy, never never touches the network. A broken download
resumes where it stopped.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "signature", Usage: "path or URL of the detached signature (only with one IMAGE)"},
			&cli.StringFlag{Name: "pull-policy", Value: string(localimage.PullUpdate), Usage: "when to fetch from the network: new, update or never"},
			&cli.BoolFlag{Name: "full", Usage: "print the full image ID (all 128 hex digits)"},
			&cli.StringFlag{Name: "os", Usage: "the OS of the image to pick from an OCI image index (default linux)"},
			&cli.StringFlag{Name: "arch", Usage: "the architecture (and variant: arm/v7) to pick from an OCI image index (default amd64)"},
		},
		Action: fetchImages,
	}
}
