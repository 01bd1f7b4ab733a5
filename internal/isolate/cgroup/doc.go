// Package cgroup puts an app in a cgroup of its own with the resource
// limits of its isolators: resource/memory (limit), resource/cpu (limit)
// and os/linux/cpu-shares (spec/ace.md). It drives the kernel's cgroup
// filesystems directly, without systemd or D-Bus, in either layout:
//
//   - cgroup v1, also the "hybrid" layout where a cgroup2 hierarchy
//     without controllers is mounted at /sys/fs/cgroup/unified: one
//     hierarchy per controller, such as /sys/fs/cgroup/memory; V1 writes
//     memory.limit_in_bytes, cpu.cfs_period_us, cpu.cfs_quota_us and
//     cpu.shares.
//   - cgroup v2 (unified), mounted at /sys/fs/cgroup: V2 enables the
//     controllers in cgroup.subtree_control down to the app's cgroup and
//     writes memory.max, cpu.max and cpu.weight.
//
// Open picks one from /proc/self/mountinfo. Groups are created below a
// parent cgroup, by default the cgroup the calling process is in, so that
// nscn never escapes the limits it runs under; Config.Parent changes it.
// The layout below the parent is the caller's choice; stage1s use
// nscn/<pod uuid>/<app name>.
//
// It runs in stage1, on the host side, as root (creating cgroups and
// moving processes needs it). Current, which a process calls to read its
// own limits, needs no privilege. Documentation/isolators.md has the
// details, including how an app sees its limits.
package cgroup
