package entrypoint

import (
	"slices"
	"strings"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
	"github.com/nosecone/nscn/internal/stage1/units"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage1-kvm/guest"
)

// podUnits returns the guest's units for pod: the nspawn flavor's
// (internal/stage1/units), each app's stdout and stderr on its
// virtio-serial ports unless console (--interactive on a terminal), and
// the readiness socket, and the agent's unit (agentUnit; metadata: the
// pod is registered with the metadata service, whose answers the agent
// serves to the apps). It is pure: run writes the files.
func podUnits(pod sdpod.Pod, console, metadata bool) ([]units.File, error) {
	var uapps []units.App
	var after []string
	for _, a := range pod.Apps {
		name := a.Spec.Name
		ua := units.App{
			Name: name, PreStart: len(a.Spec.PreStart) > 0, PostStop: len(a.Spec.PostStop) > 0,
			Stdout:  guest.PortDir + "/" + guest.AppPort(name, stage1abi.LogStreamStdout),
			Stderr:  guest.PortDir + "/" + guest.AppPort(name, stage1abi.LogStreamStderr),
			Console: console,
		}
		if a.Policy != nil {
			ua.Limits = a.Policy.Cgroup
		}
		uapps = append(uapps, ua)
		after = append(after, units.ServiceName(name))
	}
	files, err := units.Generate(units.Config{Apps: uapps, Helper: sdpod.AppHelper, Mutable: pod.Mutable})
	if err != nil {
		return nil, err
	}
	// The readiness markers are FIFOs that the pod's systemd makes
	// itself when their socket units start, after every app's unit has:
	// no process to start for them (a Go program's start costs about a
	// second in an emulated guest, taken from the apps' start). The
	// FIFOs are never written, so their service never runs. Each
	// requires the apps' units as well as following them: an app whose
	// setup fails fails its unit's start job, and with it theirs, so a
	// pod whose app never started is never marked ready, however the
	// agent's start and the app's reap race.
	var requires []string
	if len(after) > 0 {
		requires = []string{"Requires=" + strings.Join(after, " ")}
	}
	files = append(files, units.File{Name: "nscn-ready.socket", Content: strings.Join(slices.Concat([]string{
		"[Unit]",
		"Description=Tell the host that the apps have started and the agent takes requests",
		"DefaultDependencies=no",
	}, requires, []string{
		"After=" + strings.Join(append(after[:len(after):len(after)], AgentUnit), " "),
		"",
		"[Socket]",
		"ListenFIFO=" + GuestReadyFile,
		"SocketMode=0600",
		"",
	}), "\n")})
	wants := "nscn-ready.socket"
	if len(after) > 0 {
		// The apps' start alone: run marks a pod ready on it when the
		// pod ends before nscn-ready.socket, which also waits for the
		// agent, has started (an app that exits at once).
		files = append(files, units.File{Name: "nscn-started.socket", Content: strings.Join(slices.Concat([]string{
			"[Unit]",
			"Description=Tell the host that the apps have started",
			"DefaultDependencies=no",
		}, requires, []string{
			"After=" + strings.Join(after, " "),
			"",
			"[Socket]",
			"ListenFIFO=" + GuestStartedFile,
			"SocketMode=0600",
			"Service=nscn-ready.service",
			"",
		}), "\n")})
		wants += " nscn-started.socket"
	}
	files = append(files,
		units.File{Name: "nscn-ready.service", Content: strings.Join([]string{
			"[Unit]",
			"Description=Nothing: the readiness sockets' FIFOs are never written",
			"DefaultDependencies=no",
			"",
			"[Service]",
			"Type=oneshot",
			"StandardOutput=null",
			"ExecStart=" + guest.SystemdPath + " --version",
			"",
		}, "\n")},
		agentUnit(after, metadata),
		units.File{Name: "default.target.d/kvm.conf", Content: "[Unit]\nWants=" + wants + " " + AgentUnit + "\n"},
	)
	// The targets the app helper's mount units name (units.MountTargets)
	// are not written here: the image ships them in the unit directory
	// (stage1-kvm/cmd/mkunits), as the nspawn flavor's does in its own.
	return files, nil
}

// AgentUnit is the guest agent's unit (guest.Agent: the host's halt,
// enter and app requests).
const AgentUnit = "nscn-agent.service"

// agentUnit is the guest agent's unit, started once the apps' units have
// started (after, their names), as nscn-ready.socket is: a Go program's
// start from virtio-fs and its reads of its two ports every 50 ms while
// no host is connected took about a sixth of the guest's CPU when /init
// started it beside the pod's systemd (alternating runs under TCG, a pod
// without an agent against one with it: 0.5 to 0.7 s of 5.4 to 6.2 s).
// The pod is ready once the agent has its ports open (Type=notify;
// nscn-ready.socket is ordered after it). In a pod registered with the
// metadata service (metadata) the agent serves the apps their metadata:
// it starts before their units then, which wait for its READY=1, sent
// once the answers are in memory (guest.StartMetadata), or the apps'
// first requests would find no server. Its messages go to the console,
// as /init's do.
func agentUnit(after []string, metadata bool) units.File {
	lines := []string{
		"[Unit]",
		"Description=The guest agent: the host's halt, enter and app requests",
		"DefaultDependencies=no",
	}
	switch {
	case len(after) == 0:
	case metadata:
		lines = append(lines, "Before="+strings.Join(after, " "))
	default:
		lines = append(lines, "After="+strings.Join(after, " "))
	}
	lines = append(lines,
		"",
		"[Service]",
		// READY=1 once its ports are open: the readiness socket
		// waits for it (guest.OpenPort says why).
		"Type=notify",
		"NotifyAccess=main",
		"ExecStart="+guest.AgentPath,
		"StandardInput=null",
		"StandardOutput=tty",
		"StandardError=tty",
		"TTYPath=/dev/console",
		"",
	)
	return units.File{Name: AgentUnit, Content: strings.Join(lines, "\n")}
}

// addedAppUnits returns the guest's units of an app that app/add brings
// into a running mutable pod: the nspawn flavor's (units.AppUnits), its
// stdout and stderr on the ports of output slot slot. It is pure: app/add
// writes the files.
func addedAppUnits(a sdpod.App, slot int) ([]units.File, error) {
	ua := units.App{
		Name: a.Spec.Name, PreStart: len(a.Spec.PreStart) > 0, PostStop: len(a.Spec.PostStop) > 0,
		Stdout: guest.PortDir + "/" + guest.SlotPort(slot, stage1abi.LogStreamStdout),
		Stderr: guest.PortDir + "/" + guest.SlotPort(slot, stage1abi.LogStreamStderr),
		Notify: a.Notify, Sockets: a.Sockets,
	}
	if a.Policy != nil {
		// The guest has cgroup v2 only.
		ua.Limits = a.Policy.Cgroup
	}
	return units.AppUnits(units.Config{Helper: sdpod.AppHelper}, ua)
}
