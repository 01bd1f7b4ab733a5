// Package hostpid is the protocol between the app helper of a pod run
// with --pid=parent (sdpod.Pod.HostPID) and run's spawner, on the host:
// the frames they exchange on a SOCK_SEQPACKET unix socket
// (sdpod.HostPIDSocket), and the two ends' socket calls. It runs in the
// stage1 (the helper inside the pod, the spawner on the host) and needs
// no privilege of its own; the spawner's checks of its caller (its
// cgroup, its root, its PID namespace) and the process it starts are
// stage1/entrypoint's (hostpid_linux.go).
//
// Why a spawner: systemd-nspawn gives the pod a PID namespace of its own,
// every process of the pod descends from it, and setns(2) into an
// ancestor PID namespace is refused; the one process of the pod in the
// host's PID namespace is run, systemd-nspawn's parent. So run starts
// the app there, on the helper's request. The conversation, one
// connection per app start:
//
//	app helper (in the pod)                run's spawner (on the host)
//	connect(HostPIDSocket)  ─────────────▶ accept; SO_PEERPIDFD: the
//	                                       caller, checked (its cgroup is
//	                                       the app's unit, its root the
//	                                       pod's, its PID namespace the
//	                                       pod's)
//	Request{app}, SCM_RIGHTS stdin,  ────▶ the app's entry computed from
//	stdout, stderr                         the pod manifest (never from the
//	                                       request); the descriptors
//	                                       checked; the app's process
//	                                       started (it joins the caller's
//	                                       namespaces, confines itself
//	                                       exactly as the helper would and
//	                                       execs the app)
//	                        ◀────────────  Started{pid} or Error{message}
//	Signal{sig} (the unit's) ───────────▶  kill(app, sig)
//	                        ◀────────────  Exit{code, signal}, close
//	close (the helper died)  ───────────▶  SIGKILL to the app
//
// A frame is one packet: a kind byte and its payload (Encode, Parse).
package hostpid
