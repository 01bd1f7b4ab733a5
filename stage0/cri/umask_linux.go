package cri

import "golang.org/x/sys/unix"

// umask sets the process's umask and returns the previous one: the socket
// must never exist with a wider mode, even for a moment.
func umask(m int) int { return unix.Umask(m) }
