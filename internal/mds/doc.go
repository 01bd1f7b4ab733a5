// Package mds is the App Container metadata service of Nose Cone: the
// server behind "nscn metadata-service", which nscn-grpc serves. The client
// that registers a pod with it, and the Registration it sends, are package
// mdsclient, which does not link net/http.
//
// It implements the "App Container Metadata Service" section of the appc
// spec (https://github.com/appc/spec/blob/v0.8.11/spec/ace.md#app-container-metadata-service):
// the pod endpoints (annotations, manifest, uuid), the app endpoints
// (annotations, image/manifest, image/id) and the identity endpoint
// (hmac/sign, hmac/verify), all under /acMetadata/v1/. As rkt did, it also
// answers GET annotations/<name> with the value of one annotation as
// text/plain.
//
// The service has two faces:
//
//   - The registration API, HTTP over a Unix socket (DefaultSocket, mode
//     0600). Only root, or the user the service runs as, may use it: the
//     peer's credentials (SO_PEERCRED) are checked on every request, so a
//     loose socket mode is not enough to reach it. mdsclient's Register,
//     Unregister and Running are its client. Stage0 ("nscn run") registers
//     a pod with a token before its stage1 runs, and gc and rm unregister
//     it; mdsclient.FromPodDir reads the manifests a registration needs
//     from the pod directory.
//
//   - The metadata API, HTTP on TCP (DefaultPort), reached by the apps of
//     the pods through AC_METADATA_URL. It answers a request only for the
//     pod that sent it, identified by the token in the URL path or, for a
//     pod registered without a token, by the source address of the request.
//     There is no pod UUID in the metadata paths: a pod can only ever name
//     itself, and any credential that does not fit exactly one pod is
//     answered 403 Forbidden. Documentation/metadata-service.md describes
//     the model.
//
// What the package does not do: it keeps its registrations in memory only
// (a restarted service knows no pod until each registers again); it does not
// set up the pods' networks, pick the address pods use to reach it or set
// AC_METADATA_URL (stage1 does, in the form of MetadataURL); it does not
// serve TLS.
//
// The package runs in stage0, in nscn-grpc. The
// server needs no privileges of its own; it is run as root in production so
// that only root may register pods.
package mds
