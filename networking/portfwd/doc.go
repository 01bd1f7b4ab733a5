// Package portfwd turns `--port NAME:[HOSTIP:]HOSTPORT` requests into port
// mappings for the CNI portmap plugin, and keeps a host-wide claim on each
// forwarded host port so that two pods cannot forward the same one.
//
// Parse reads the flag (stage0), Resolve matches the pod's exposed ports
// against the apps' named ports (types.Port of the app manifests, appc spec
// https://github.com/appc/spec/blob/master/spec/ace.md), and Claim/Release
// manage the claims. The forwarding itself is done by the portmap plugin,
// chained by package networking.
//
// Parse and Resolve are pure. Claim writes under a claim directory (by
// default /run/nscn/ports) and probes the port with a bind; it needs root
// only where that directory or a port below 1024 needs it.
package portfwd
