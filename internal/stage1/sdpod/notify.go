package sdpod

import (
	"bytes"

	"github.com/appc/spec/schema"

	"github.com/nosecone/nscn/internal/stage1/appmount"
)

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

// NotifyAnnotation is the image annotation of an app that speaks
// sd_notify(3) (appc's executor annotations, as rkt read it): its value
// "true" makes the pod wait for the app's own READY=1.
const NotifyAnnotation = "appc.io/executor/supports-systemd-notify"

// AppNotifySocket is the pod's systemd's notification socket, bound at
// the same path in the rootfs of an app that supports sd_notify.
const AppNotifySocket = "/run/systemd/notify"

// SupportsNotify reports whether an app image's manifest declares
// NotifyAnnotation.
func SupportsNotify(im *schema.ImageManifest) bool {
	v, ok := im.Annotations.Get(NotifyAnnotation)
	return ok && v == "true"
}

// EnableNotify makes app one that says READY=1 itself: its environment
// gets NOTIFY_SOCKET and its rootfs the pod's notification socket, at
// the same path. Its unit then waits for the app's READY=1
// (units.App.Notify).
func EnableNotify(app *App) {
	app.Notify = true
	app.Spec.Env = append(app.Spec.Env, "NOTIFY_SOCKET="+AppNotifySocket)
	app.Plan.Mounts = append(app.Plan.Mounts, appmount.Mount{
		Kind: appmount.KindBind, Source: AppNotifySocket, Target: AppNotifySocket, Purpose: "system",
	})
}
