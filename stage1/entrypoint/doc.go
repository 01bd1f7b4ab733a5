// Package entrypoint implements the entrypoints of stage1-nspawn: run
// (the pod's supervisor on the host), enter, stop and gc. The app helper
// that the pod's systemd units run inside the pod is package
// internal/stage1/apphelper, which other flavors booting systemd share.
// Packages nspawn and sdpod compute what they do; this package does it,
// on Linux, as root.
//
// Process tree of a running pod:
//
//	nscn run ──exec──▶ /nscn/init (run)      host namespaces; holds RKT_LOCK_FD;
//	                    │                    sets up the pod's network namespace
//	                    │                    (networking.Setup, net_linux.go; for a
//	                    │                    pod with no app, the CNI ADDs while
//	                    │                    it boots: overlapsNetwork),
//	                    │                    copies the apps' output FIFOs to its
//	                    │                    stdout and stderr and to the apps'
//	                    │                    logs (io_linux.go), forwards SIGTERM,
//	                    │                    SIGINT and SIGHUP as SIGTERM
//	                    └─ systemd-nspawn    the image's loader and libraries; pid in `ppid`
//	                        └─ systemd       the pod's pid 1 (the only child of ppid)
//	                            └─ app-NAME.service: /nscn/app prepare|exec|reap NAME
//
// run and the helpers talk through files in the stage1 rootfs (the pod's
// root), never through inherited descriptors: sdpod.PodConfigFile (the
// apps, written before the pod boots), sdpod.AppStdoutFIFO,
// AppStderrFIFO and AppStdinFIFO (the apps' I/O), stage1abi.AppStatusFile per app and
// sdpod.FirstFailureFile (written by the helper of the app, or its "reap"
// mode), sdpod.KilledFile
// (written by stop --force). Readiness alone travels over a socket:
// systemd-nspawn passes the READY=1 of the pod's systemd on to run's
// NOTIFY_SOCKET, and run writes stage1abi.ReadyFile (ready_linux.go). The
// network (netns, net-info/ in the pod directory) outlives the pod until
// gc tears it down.
package entrypoint
