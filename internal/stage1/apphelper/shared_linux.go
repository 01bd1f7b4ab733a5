package apphelper

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/stage1/appmount"
	"github.com/nosecone/nscn/internal/stage1/inroot"
	"github.com/nosecone/nscn/internal/stage1/podmount"
	"github.com/nosecone/nscn/pkg/stage1abi"
)

// Mounts with shared propagation (stage1abi.PropagationShared, the CRI's
// bidirectional mounts) must stay in the host source's peer group all the
// way into the app's mount namespace, for what the app mounts below them
// to reach the host and the other way round. Two steps make every app
// mount a slave (privateMounts', for the helper's namespace, a copy of
// the pod's, where mountApp makes the app's tree, and enterApp's, for
// the app's own namespace): the shared mounts are cloned before each and
// the clones, still peers, put in place after it:
//
//	host source (shared) ── open_tree clone, app/add ──▶ pod bind dir (peer)
//	pod bind dir's copy in the helper's namespace ── clone before
//	    privateMounts' slave step, moved into the app rootfs ──▶ (peer)
//	app rootfs copy in the app's namespace ── clone before enterApp's
//	    slave step, moved back on top after it ──▶ (peer)

// splitShared returns the plan without its shared mounts, and those.
func splitShared(p appmount.Plan) (appmount.Plan, []appmount.Mount) {
	var rest, shared []appmount.Mount
	for _, m := range p.Mounts {
		if m.Kind == appmount.KindBind && m.Propagation == stage1abi.PropagationShared {
			shared = append(shared, m)
			continue
		}
		rest = append(rest, m)
	}
	p.Mounts = rest
	return p, shared
}

// sharedClone is a shared mount of an app's rootfs, cloned (still a peer)
// before a slave step, and the mount it goes back onto.
type sharedClone struct {
	target string
	at     *os.File // O_PATH on the mount's root, in the app's rootfs
	clone  int      // open_tree(OPEN_TREE_CLONE) fd
}

// cloneShared clones each shared mount of the plan at the rootfs: their
// peer group survives the caller's next MS_SLAVE|MS_REC, to be restored
// with restoreShared.
func cloneShared(rootfs string, p appmount.Plan) (_ []sharedClone, err error) {
	_, shared := splitShared(p)
	if len(shared) == 0 {
		return nil, nil
	}
	root, err := inroot.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("open app rootfs: %w", err)
	}
	defer func() { _ = root.Close() }()
	var out []sharedClone
	defer func() {
		if err != nil {
			closeShared(out)
		}
	}()
	for _, m := range shared {
		at, err := inroot.Open(root, m.Target, unix.O_PATH)
		if err != nil {
			return out, fmt.Errorf("open shared mount %s: %w", m.Target, err)
		}
		fd, err := unix.OpenTree(int(at.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
		if err != nil {
			_ = at.Close()
			return out, &os.PathError{Op: "open_tree", Path: m.Target, Err: err}
		}
		out = append(out, sharedClone{target: m.Target, at: at, clone: fd})
	}
	return out, nil
}

// restoreShared stacks each clone back onto its mount, and closes them.
func restoreShared(cs []sharedClone) error {
	defer closeShared(cs)
	for _, c := range cs {
		if err := unix.MoveMount(c.clone, "", int(c.at.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return &os.PathError{Op: "move_mount (shared)", Path: c.target, Err: err}
		}
	}
	return nil
}

func closeShared(cs []sharedClone) {
	for _, c := range cs {
		_ = c.at.Close()
		_ = unix.Close(c.clone)
	}
}

// cloneSharedSources clones (open_tree OPEN_TREE_CLONE, recursively for
// a recursive bind) the source of each shared mount, as podmount.InRoot
// would resolve it to bind it: a detached tree, in the caller's peer
// group, for privateMounts' thread to take before its slave step.
func cloneSharedSources(shared []appmount.Mount) (clones []*os.File, err error) {
	defer func() {
		if err != nil {
			closeAll(clones)
			clones = nil
		}
	}()
	for _, mt := range shared {
		var src *os.File
		if mt.SourceNoSymlinks {
			src, err = inroot.OpenNoSymlinks(mt.Source, unix.O_PATH)
		} else {
			src, err = os.OpenFile(mt.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		}
		if err != nil {
			return clones, podmount.SourceError(mt, err)
		}
		flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
		if mt.Flags&appmount.Recursive != 0 {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(int(src.Fd()), "", flags)
		_ = src.Close()
		if err != nil {
			return clones, &os.PathError{Op: "open_tree (clone)", Path: mt.Source, Err: err}
		}
		clones = append(clones, os.NewFile(uintptr(fd), mt.Source))
	}
	return clones, nil
}
