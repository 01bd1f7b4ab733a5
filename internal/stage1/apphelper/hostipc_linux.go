package apphelper

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/sdpod"
)

// joinHostIPC moves the calling thread, locked for good, into the IPC
// namespace run bound at sdpod.HostIPCNS (a pod run with --ipc=parent,
// sdpod.Pod.HostIPC): every process it then starts, the app's, is born
// there. setns(2) into an IPC namespace has no ancestry rule, so the
// helper, in the pod's own, can join the host's; setns refuses (EINVAL)
// a file that is not an IPC namespace.
func joinHostIPC() error {
	f, err := os.Open(sdpod.HostIPCNS)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWIPC); err != nil {
		return &os.PathError{Op: "setns(CLONE_NEWIPC)", Path: sdpod.HostIPCNS, Err: err}
	}
	return nil
}
