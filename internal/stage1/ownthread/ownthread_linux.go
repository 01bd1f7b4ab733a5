// Package ownthread runs a function on a locked OS thread of its own that
// ends with it, for the stage1 flavors' code that changes a thread's
// namespaces, root or credentials, or whose children must outlive nothing
// but that thread (a parent-death signal follows the thread that forked
// the process, prctl(2)).
package ownthread

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Run runs fn on a locked OS thread of its own that ends with it (the
// goroutine returns locked, so the runtime ends the thread instead of
// reusing it): fn may change that thread's namespaces, root and
// credentials, and no other goroutine ever runs there after.
//
// That thread is never the thread group's leader, the main thread, whose
// root and credentials /proc/PID shows for the whole process, and whose
// end the runtime cannot allow (it would wedge it instead). The leader
// check replaces locking the main goroutine to the main thread in an init
// function, which STYLE.md rules out.
func Run(fn func()) {
	<-goWith(isLeader, fn)
}

// Go starts fn as Run does, but returns at once: the channel is closed
// when fn has returned.
func Go(fn func()) <-chan struct{} {
	return goWith(isLeader, fn)
}

// goWith is Go with the leader check as a seam for the tests.
func goWith(leader func() bool, fn func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if !leader() {
			fn() // never unlocked: the thread ends with this goroutine
			return
		}
		// On the leader: keep it, locked, so that the goroutine below
		// cannot land on it, then hand it back to the runtime unchanged.
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			runtime.LockOSThread()
			fn()
		}()
		<-inner
		runtime.UnlockOSThread()
	}()
	return done
}

func isLeader() bool { return unix.Gettid() == unix.Getpid() }
