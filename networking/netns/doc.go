// Package netns creates, enters and removes the network namespace of a pod.
//
// A pod's namespace is pinned by a bind mount of /proc/thread-self/ns/net
// onto a file (by default /run/netns/nscn-<uuid>, where `ip netns` lists
// it), so it outlives every process. New makes one, Remove unmounts and
// deletes it, IsNetNS tells a live pin from a stale file, and Do runs a
// function on an OS thread that has joined the namespace.
//
// It runs in a stage1 on the host, in the host's mount namespace, and needs
// root (CAP_SYS_ADMIN). Both New and Do use a goroutine that locks its OS
// thread and never unlocks it: the thread changed namespace, so the Go
// runtime must throw it away when the goroutine returns (see README.md).
// The package creates no interfaces other than bringing lo up.
package netns
