// Package registry is the end-to-end suite of images from OCI and Docker
// registries (issue #12): it starts Debian's docker-registry on loopback
// (plain http, TLS with a CA the test makes, htpasswd auth), pushes images
// built by the test with go-containerregistry, copies them with skopeo, and
// drives the built nscn binary against them, as root. Reverse proxies on
// loopback count the blobs the registry serves, flip a byte of one, or stall
// a download half way, so that sharing, verification and resumption are
// asserted from the wire, not from nscn's own account.
//
// Nothing leaves the machine: every server listens on 127.0.0.1 and every
// image is built from build/images/busybox.aci.
//
// The tests carry the `functional` build tag and find the binaries through
// environment variables that `make registry` sets:
//
//	NSCN_BIN                the nscn binary (stage1-fly.aci beside it)
//	NSCN_STAGE1_NSPAWN_ACI  the stage1-nspawn image
//	NSCN_IMAGES             the images of scripts/build-images.sh (busybox.aci)
//
// and use /usr/bin/docker-registry, skopeo and podman from Debian
// (scripts/install-deps.sh).
package registry
