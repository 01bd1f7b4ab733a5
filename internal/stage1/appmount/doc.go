// Package appmount computes an app's filesystem setup (system mounts,
// the pod's volumes per appc spec/pods.md, DNS files) as data, a Plan,
// and applies a Plan through one Mounter interface each flavor
// implements (package podmount is the one that mounts for real). Planning
// performs no mounts and needs no privileges.
package appmount
