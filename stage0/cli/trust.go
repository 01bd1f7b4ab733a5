package cli

import (
	"time"

	"github.com/urfave/cli/v2"
)

// keyFetchTimeout bounds fetching one key over the network.
const keyFetchTimeout = 2 * time.Minute

func trustCommand() *cli.Command {
	return &cli.Command{
		Name:      "trust",
		Usage:     "trust a key for image signature verification, list or remove trusted keys",
		ArgsUsage: "[KEYFILE|URL...]",
		Description: `Trusted keys decide which image signatures nscn accepts. A key is trusted
either for an image name prefix or as a root key:

   --prefix example.com/app   trusts example.com/app and every name below it,
                              such as example.com/app/db, but not example.com/apple
   --root                     trusts every image

Adding keys: give one or more key files or URLs (a path, file://, https://; plain
http:// only with --insecure-allow-http or --insecure-options=pubkey, and TLS
certificates are not checked only with --insecure-options=tls). For each key nscn
prints the fingerprint and user IDs on stderr and asks whether to trust it; compare
the fingerprint with one the image publisher gave you over a channel you trust.
Anything but "yes" stores nothing. --skip-fingerprint-review skips the question.
Keys are written to <local-config>/trustedkeys/prefix.d/<prefix>/<fingerprint> or
<local-config>/trustedkeys/root.d/<fingerprint>, and the path of each stored key
is printed on stdout.

Discovering keys: with --prefix and no key argument, nscn reads the
ac-discovery-pubkeys meta tags of https://PREFIX?ac-discovery=1 (walking up
PREFIX's path, as image discovery does; the page over plain http only with
--insecure-options=http), downloads each key over https (http keys only with
--insecure-allow-http or --insecure-options=pubkey), prints its fingerprint, user
IDs and the prefix, and asks on the terminal whether to trust it. Without a
terminal on stdin it refuses, unless the global --trust-keys-from-https is given,
which trusts keys discovered over https without the question (as rkt did), or
--skip-fingerprint-review. A root key is never discovered: --root needs a key file
or URL.

Listing: --list prints the trusted keys of the local and system config directories
(--format=json for scripts).

Removing: --remove FINGERPRINT with --prefix PREFIX (or with no prefix, or --root,
for a root key) deletes the local key file; a key shipped in the system config
directory is disabled with an empty file of the same name in the local one.

Flags go before the key arguments. Examples:

   nscn trust --prefix example.com/app ./example-app.asc
   nscn trust --root https://example.com/keys/root.asc
   nscn trust --prefix example.com/app              (keys discovered, reviewed on the terminal)
   nscn --trust-keys-from-https trust --prefix example.com/app
   nscn trust --list --format=json
   nscn trust --remove "0123 4567 89AB CDEF 0123 4567 89AB CDEF 0123 4567" --prefix example.com/app

See Documentation/signing-and-verification.md.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "prefix", Usage: "image name prefix to trust the key for, such as example.com/app"},
			&cli.BoolFlag{Name: "root", Usage: "trust the key for every image"},
			&cli.BoolFlag{Name: "skip-fingerprint-review", Usage: "trust the keys without showing them and asking"},
			&cli.BoolFlag{Name: "insecure-allow-http", Usage: "allow fetching keys over plain http"},
			&cli.BoolFlag{Name: "list", Usage: "list the trusted keys"},
			&cli.StringFlag{Name: "format", Value: "table", Usage: "output format of --list: table or json"},
			&cli.StringFlag{Name: "remove", Usage: "stop trusting the key with this `FINGERPRINT` for --prefix (or as a root key)"},
		},
		Action: runTrust,
	}
}
