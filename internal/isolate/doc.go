// Package isolate computes and applies the confinement of an app
// process: capabilities, no_new_privs, the seccomp filter,
// oom_score_adj, cgroup resource limits and restricted /proc and /sys
// paths. It is the single policy that run, enter and app exec share, so
// that a process entered into an app is never less confined than the app
// itself.
//
// It implements the appc isolators of spec/ace.md ("Isolators", "Linux
// Isolators", "Resource Isolators"):
// https://github.com/appc/spec/blob/master/spec/ace.md#isolators. What
// each isolator does here, the defaults and how each stage1 flavor uses
// them are in Documentation/isolators.md.
//
// There are two steps:
//
//   - PolicyFor turns an app's isolators and the --disable-* run flags
//     into a Policy (plain data, JSON-encodable) and a Report of what is
//     enforced, modified or ignored, which the stage1 shows the user, as
//     the spec requires. It is pure and needs no privilege.
//   - Exec, in a helper process the stage1 re-executes for the purpose,
//     applies a Policy to itself and execs the app's program. It needs
//     root. The cgroup and the restricted paths are not applied by Exec:
//     the stage1 creates the cgroup with package cgroup (host side,
//     before Exec) and mounts the paths with its mount plan.
//
// Sub-packages: caps (capability names and sets, per-thread changes),
// seccomp (filters and their BPF programs), cgroup (v1 and v2 managers).
// It runs in stage1 only; stage0 never imports it (only caps, for the
// consent to capabilities beyond appc's default set). Linux only, apart from
// PolicyFor's data types. See README.md for the process and thread
// constraints of Exec.
package isolate
