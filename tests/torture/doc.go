// Package torture is the torture suite: it drives the built nscn binary,
// as root, through crashes (SIGKILL at seeded random points of fetch,
// render, prepare, run and gc), parallel use of one data directory, and
// hostile images (extraction escapes, a decompression bomb, dependency
// cycles, fuzzed manifests), and checks after each that the store and the
// pods keep the guarantees of Documentation/store.md and
// Documentation/pod-lifecycle.md.
//
// The tests carry the `torture` build tag and, like the end-to-end suite,
// find the binaries through environment variables that make sets:
//
//	NSCN_BIN     the nscn binary (with stage1-fly.aci and nscn-fetch beside it)
//	NSCN_IMAGES  the directory of images built by scripts/build-images.sh
//	NSCN_ACTOOL  the appc reference tool, to build images
//
// `make torture` runs the full suite (a few minutes); with -test.short it
// runs the short version that `make check` uses. Documentation/torture.md
// describes what is checked, the seeds and the durations.
package torture
