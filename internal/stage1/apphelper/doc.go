// Package apphelper is the app helper of a pod whose init is systemd: the
// /nscn/app binary each app's unit runs inside the pod (modes prepare,
// pre-start, exec, run, post-stop, reap; see IsAppMode), which prepares
// the app's root, gives the app a PID and mount namespace of its own
// under /nscn/app-init, joins the app's cgroups, records its credentials
// (ReadCredsRecord, for enter) and its exit status. It works from the
// files run left in the pod (package sdpod), so every flavor that boots
// systemd as the pod's pid 1 (stage1/ nspawn, stage1-kvm/) runs the same
// helper. See README.md for the process constraints.
package apphelper
