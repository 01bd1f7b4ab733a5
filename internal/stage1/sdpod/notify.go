package sdpod

import "bytes"

// NotifySocket is the NOTIFY_SOCKET run gives systemd-nspawn
// (sd_notify(3)): an abstract unix datagram socket, as the leading "@"
// says, so that the 108-byte limit of socket paths never meets a long pod
// directory, and nothing is left on disk if run dies. The pod's UUID keeps
// the names of two pods apart.
//
// With --notify-ready=yes, systemd-nspawn sends to it READY=1 when the
// pod's systemd does: once default.target, which wants every app's
// service, is reached and no start job is left, that is once each app has
// passed its prepare and pre-start steps and been started. It also sends
// STATUS= lines, which run ignores.
func NotifySocket(uuid string) string { return "@nscn-notify-" + uuid }

// NotifyReady reports whether an sd_notify message says READY=1. A
// message is a list of VAR=VALUE assignments, one a line (sd_notify(3));
// the last assignment of a variable counts, as in systemd.
func NotifyReady(msg []byte) bool {
	ready := false
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("READY=")); ok {
			ready = string(v) == "1"
		}
	}
	return ready
}
