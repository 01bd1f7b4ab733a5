// Package crilog is the per-container log writer of `nscn cri`: a small
// host-side process that copies what a container writes on stdout and
// stderr into the kubelet's log file (the container's LogPath) in the CRI
// log format:
//
//	2026-12-07T07:09:27.123456789Z stdout F a whole line
//	2026-12-07T07:09:27.123499999Z stderr P the first 16 KiB of a long line
//
// (internal/podlog writes the entries.)
//
// (Documentation/cri.md, "Logs"). It runs in stage0, as root, beside the
// pod: `nscn cri` starts one per started container that has a LogPath,
// in a session of its own, so that it outlives a restart of the server.
// It reads the app's output FIFOs of the pod's stage1 (the app helper
// copies the app's output there as it writes it to the pod's journal);
// it ends when both FIFOs reach the end of file, which is when the app and
// everything that held its output have exited.
//
// What it trusts: nothing the pod writes is executed or parsed beyond
// splitting bytes at newlines. The FIFOs are opened beneath the pod
// directory without following symbolic links and must be FIFOs; the log
// file is opened beneath the log directory without following symbolic
// links (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so that a link
// planted in the log directory cannot send the output elsewhere.
//
// A container created with a standard input gets a writer too (with or
// without a log file): it holds the app's input FIFO open from before
// the app starts, so that the app reads no end of file between attaches.
//
// A control socket (0600, in a 0700 directory) answers three requests,
// one line each: "reopen" (the kubelet renamed the file: open LogPath
// anew, ReopenContainerLog), "wait" (answered once the output is all
// written: ContainerStatus of an exited container waits for it, so that
// the file is complete when the status says exited) and "attach" (the
// connection then carries the client's input to the app's stdin and the
// app's output back, attach_linux.go).
package crilog
