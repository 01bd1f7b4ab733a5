// Package annotation names the annotations nscn writes into the appc
// manifest of an image converted from OCI. It imports nothing, so that
// stage0 code that only reads stored images (prepare, in the nscn binary)
// need not link the registry client of package oci, which writes them.
// Stage0 reads them; no stage1 does, so they are not part of the stage1
// ABI.
package annotation

const (
	// Entrypoint and Cmd keep the config's Entrypoint and Cmd apart, as
	// JSON arrays: the app's exec is their concatenation, --exec
	// replaces the entrypoint (and drops cmd, as docker's --entrypoint
	// does) and arguments after "--" replace cmd.
	Entrypoint = "nscn.io/oci/entrypoint"
	// Cmd is the config's Cmd (see Entrypoint).
	Cmd = "nscn.io/oci/cmd"
	// Reference is the reference fetched, canonical
	// (docker://index.docker.io/library/busybox:latest).
	Reference = "nscn.io/oci/reference"
	// Digest is the manifest's digest (sha256:…).
	Digest = "nscn.io/oci/digest"
	// PrimaryGroup marks an app whose config named a user but no group:
	// docker runs it with the user's primary group, which prepare looks
	// up in the image's /etc/passwd.
	PrimaryGroup = "nscn.io/oci/primary-group"
)
