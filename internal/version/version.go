// Package version carries the build's version string, set by the Makefile
// with -ldflags -X.
package version

// Version is the release or git description of this build.
var Version = "dev"

// AppcVersion is the App Container spec version this build implements.
const AppcVersion = "0.8.11"
