// Package cni finds a pod's CNI networks, runs their plugins, and records
// what they returned.
//
// It knows the built-in networks (default, default-restricted), loads user
// networks from <config>/net.d/*.conf and *.conflist, chains the portmap
// plugin when ports are forwarded, runs ADD and DEL through libcni
// (https://github.com/containernetworking/cni/blob/main/SPEC.md) against a
// plugin directory, and reads and writes the per-network records kept in
// the pod's net-info directory (see Record).
//
// Loading and records need no privileges; running plugins needs root. It
// runs in a stage1, on the host. It neither creates nor enters namespaces:
// the plugins do, given the path of the pod's network namespace.
package cni
