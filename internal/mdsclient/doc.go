// Package mdsclient is the side of the App Container metadata service that
// stage0 and the stage1s use: a pod's Registration, read from its pod
// directory (FromPodDir), its token and AC_METADATA_URL, and the client of
// the service's registration API (Register, Unregister, Running). The
// service itself, "nscn metadata-service", is package mds, which nscn-grpc
// links (Documentation/metadata-service.md).
//
// The client speaks HTTP/1.0 to the registration API's Unix socket itself
// (a request line, a few headers and a body; the answer read to the end of
// the connection, which the service closes after an HTTP/1.0 answer)
// rather than through net/http: every nscn run would otherwise link and
// initialise net/http, crypto/tls and crypto/x509 to register a pod with a
// service that is rarely there (Documentation/performance.md).
package mdsclient
