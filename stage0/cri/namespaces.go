package cri

import (
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/pkg/stage1abi"
	"github.com/nosecone/nscn/stage0/prepare"
)

// applyPIDMode maps a container's PID namespace mode onto the app. Each
// app of a stage1-nspawn pod has a PID namespace of its own whatever
// the mode; CONTAINER (the kubelet's default) also makes the app's own
// process its pid 1 (stage1abi.AnnotationAppPID1, as runc does), while
// POD keeps the stage1's init as pid 1, so that the container's
// process is not pid 1 there, as it would not be beside a pause
// container. NODE is the sandbox's (checkSandboxSecurity), TARGET is
// refused by applySecurity.
func applyPIDMode(ns *runtimeapi.NamespaceOption, app *prepare.App) {
	if ns.GetPid() == runtimeapi.NamespaceMode_CONTAINER {
		app.Annotations = append(app.Annotations, types.Annotation{Name: stage1abi.AnnotationAppPID1, Value: "true"})
	}
}

// sandboxPIDArgs are the app sandbox flags for a sandbox's PID
// namespace mode: --pid=parent for NODE (stage1-nspawn's run starts
// every app's process in its own PID namespace, the host's: see
// Documentation/cri.md, "The host's PID namespace"), none otherwise.
// NODE is refused on the kvm handler, whose apps run under a kernel of
// their own.
func sandboxPIDArgs(cfg *runtimeapi.PodSandboxConfig, handler string) ([]string, error) {
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() != runtimeapi.NamespaceMode_NODE {
		return nil, nil
	}
	if handler == "kvm" {
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "the host's PID namespace (namespace_options pid NODE) on the kvm runtime handler: its pods run under a kernel of their own")
	}
	return []string{"--pid=" + stage1abi.PIDParent}, nil
}

// sandboxIPCArgs are the app sandbox flags for a sandbox's IPC
// namespace mode: none for POD (the pod's own), --ipc=parent for NODE
// (the host's: stage1-nspawn's app helper puts every app process in the
// IPC namespace nscn app sandbox runs in, the server's). NODE is
// refused on the kvm handler, whose apps run under a kernel of their
// own, and with IPC sysctls, which would be the host's.
func sandboxIPCArgs(cfg *runtimeapi.PodSandboxConfig, handler string, sysctls []sysctl) ([]string, error) {
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() != runtimeapi.NamespaceMode_NODE {
		return nil, nil
	}
	if handler == "kvm" {
		return nil, errdefs.Newf(errdefs.ErrNotImplemented, "the host's IPC namespace (namespace_options ipc NODE) on the kvm runtime handler: its pods run under a kernel of their own")
	}
	for _, s := range sysctls {
		if s.flag == unix.CLONE_NEWIPC {
			return nil, errdefs.InvalidArgument("sysctl %s: the sandbox has the host's IPC namespace, whose sysctls are the host's", s.name)
		}
	}
	return []string{"--ipc=" + stage1abi.IPCParent}, nil
}
