// Package download fetches images, signatures and keys over HTTP(S) for
// stage0.
//
// Fetch streams a large object into a partial file that survives failures:
// a broken transfer is resumed with a Range request, both within one call
// (a few retries with a short backoff) and across calls (the next nscn
// invocation), guarded by If-Range with the validator kept next to the file
// in partialPath+".meta". Fetch also revalidates with If-None-Match and
// reports the Cache-Control freshness lifetime so the store can skip the
// network while an image is fresh. Get reads a small object into memory.
//
// Security defaults: only https is allowed unless the caller opts into plain
// http (--insecure-options=http), which also governs redirects (https never
// redirects to http without it); certificates are verified unless the caller
// opts out (--insecure-options=tls). Only connection, TLS handshake and
// response-header timeouts apply; a body may take as long as it needs, but
// the context cancels it and a body that stalls is resumed.
//
// Failures carry an internal/errdefs class: ErrNotFound (404, 410),
// ErrPermissionDenied (401, 403, refused plain http, untrusted certificate),
// ErrUnavailable (unreachable host, 408, 429, 5xx, a transfer that keeps
// breaking), ErrInvalidArgument (bad URL, other 4xx, object over the size
// limit).
//
// The package does not lock the partial file: the caller must make sure
// that one partial path is used by one download at a time. It runs in
// stage0, needs no privileges, and writes only the partial path and its
// ".meta" (and transient ".meta.tmp") neighbours.
//
// Specifications: RFC 9110 (range requests, conditional requests, If-Range)
// and RFC 9111 (Cache-Control, Age).
package download
