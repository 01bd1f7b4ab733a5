// Package appentry is what the app entrypoints (app/add, app/start,
// app/stop, app/rm) of every flavor that boots systemd as the pod's init
// share: they change the apps of a running mutable pod (run --mutable,
// nscn app sandbox), and do it the same way whichever flavor they belong
// to.
//
//   - Main parses the entrypoint's argv, runs the operation and turns its
//     error into the ABI's exit status and one stderr line;
//   - CheckCall checks the pod directory and the pod pid stage0 passed;
//     the flavor checks that the pid is its pod's (the nspawn flavor's
//     pod init, the kvm flavor's qemu);
//   - Record is what run leaves in the pod directory for app/add (the run
//     arguments and the files generated from the pod's network);
//     WriteRecord and ReadRecord write and read it;
//   - LoadAddedApp, NewLayout, CheckBinds and Attachments compute an
//     added app's layout exactly as run computes a run-time app's, and the
//     host paths to attach into the running pod (package podattach);
//   - WaitStarted waits until the unit app/start started has settled;
//   - AppFiles lists what app/rm removes of an app from the stage1 rootfs;
//   - StartedApps lists the apps app/start started that have no status,
//     for run to record when the pod is killed.
//
// How an entrypoint reaches the pod's systemd (its private bus, or the
// guest agent) and writes into the pod's root stays in the flavor. It
// runs in stage1, on the host, as root; it switches on no flavor.
package appentry
