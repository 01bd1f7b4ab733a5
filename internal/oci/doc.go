// Package oci reads OCI and Docker images for stage0: it parses image
// references (docker://, oci:, oci-archive:, docker-archive:), opens them
// from a registry or a local layout or archive, picks one platform out of
// an index, and turns an image config into the appc app nscn runs.
//
// It does not store anything: stage0/fetch streams what it returns into the
// store, which verifies every blob against its digest. It does not
// flatten images either: layers stay layers (store/tree applies them with
// their whiteouts when it renders a tree).
//
// Image formats: https://github.com/opencontainers/image-spec (manifest,
// index, config, layer) and Docker's image manifest schema 2, which
// github.com/google/go-containerregistry reads for us.
//
// It runs in stage0 and needs no privileges; network access goes only to
// the registries the user names.
package oci
