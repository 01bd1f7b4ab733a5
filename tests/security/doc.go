// Package security is the containment suite: it attacks pods run by the
// built nscn binary and stage1 images, as root, the way a hostile image or
// a careless caller would, and asserts that each attack fails. Each test
// names the class of Documentation/security.md it covers.
//
// The tests carry the `functional` build tag and find the binaries through
// environment variables that `make security` sets:
//
//	NSCN_BIN                the nscn binary (stage1-fly.aci beside it)
//	NSCN_STAGE1_NSPAWN_ACI  the stage1-nspawn image
//	NSCN_IMAGES             the images of scripts/build-images.sh
//	NSCN_ACTOOL             the appc reference tool, to build more images
//	NSCN_ATTACK             the static attacker (./attack), packed into images
package security
