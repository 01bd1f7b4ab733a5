package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/nosecone/nscn/internal/authconfig"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "print the configuration nscn uses, merged from flags and the config directories, as JSON",
		Description: `Prints, as rkt config did, one JSON object whose "stage0" list holds an entry per
kind of setting, each with "nscnKind" and "nscnVersion":

   paths        the data directory, the stage1 image directories and the local,
                system and user config directories (--dir, --local-config,
                --system-config, --user-config)
   stage1       the default stage1 image: from stage1.d in the config directories
                ("source" names the file), or the build's default image
   auth         credentials for https servers, from auth.d (secrets masked)
   dockerAuth   credentials for registries, from auth.d (secrets masked)
   trustedKey   each key trusted for image signatures: prefix (or root), fingerprint,
                user IDs and which config directory holds it (see nscn trust)
   registryTrust
                registries and repositories whose tags are taken without a digest,
                from registries.d (Documentation/images.md)

Passwords and tokens are shown as ******; user names are shown. A configuration
file that cannot be read or parsed fails the command, naming the file.`,
		Action: runConfig,
	}
}

// configEntry is one element of the "stage0" list.
type configEntry struct {
	Kind    string `json:"nscnKind"`
	Version string `json:"nscnVersion"`

	// paths
	Data            string   `json:"data,omitempty"`
	Stage1ImageDirs []string `json:"stage1-images,omitempty"`
	LocalConfigDir  string   `json:"local-config,omitempty"`
	SystemConfigDir string   `json:"system-config,omitempty"`
	UserConfigDir   string   `json:"user-config,omitempty"`

	// stage1
	Stage1Kind     string `json:"kind,omitempty"`
	Stage1Location string `json:"location,omitempty"`
	Source         string `json:"source,omitempty"`
	Problem        string `json:"problem,omitempty"`

	// auth, dockerAuth
	Domains     []string                `json:"domains,omitempty"`
	Registries  []string                `json:"registries,omitempty"`
	Type        string                  `json:"type,omitempty"`
	Credentials *authconfig.Credentials `json:"credentials,omitempty"`
	File        string                  `json:"file,omitempty"`

	// registryTrust
	Repositories []string `json:"repositories,omitempty"`
	AcceptTags   bool     `json:"acceptTags,omitempty"`

	// trustedKey
	Prefix      string   `json:"prefix,omitempty"`
	Root        bool     `json:"root,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	UserIDs     []string `json:"userIDs,omitempty"`
	Masked      bool     `json:"masked,omitempty"`
}

type configOutput struct {
	Stage0 []configEntry `json:"stage0"`
}
