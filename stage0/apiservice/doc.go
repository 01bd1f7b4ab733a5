// Package apiservice serves nscn's read-only public API, rkt's v1alpha
// gRPC interface (package api/v1alpha, Documentation/api-service.md): the
// pods of the data directory, the images of the store, their events, and
// the apps' logs.
//
// It reads what "nscn list", "status", "image list" and "logs" read,
// through the same packages (internal/pod, stage0/podview, the store,
// stage0/applog), and changes nothing: it takes no pod lock (a pod's
// state comes from a non-blocking probe) and holds the store index's
// shared lock only for the length of one read transaction, so it never
// blocks run, gc, fetch or rm for longer than a read.
//
// Events come from a Watcher that polls the data directory: each
// interval it lists the pods (one readdir per state directory and a
// three-syscall lock probe per pod) and stats the store index, reading
// the index again only when it changed. Differences between two looks
// become events.
//
// It runs in stage0 and needs no privilege beyond read access to the data
// directory: a member of the nscn group may run it
// (Documentation/security.md). Reading a journal-backed pod's logs needs
// read access to its journal files too.
package apiservice
