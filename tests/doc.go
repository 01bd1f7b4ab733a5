// Package tests is the end-to-end suite: it drives the built nscn binary
// and the stage1 images as a user would, as root. The tests carry the
// `functional` build tag (plus flavor tags for pod tests) and find the
// binaries through environment variables that `make functional` sets:
//
//	NSCN_BIN     the nscn binary
//	NSCN_IMAGES  the directory of images built by scripts/build-images.sh
//	NSCN_ACTOOL  the appc reference tool, to build more images
package tests
