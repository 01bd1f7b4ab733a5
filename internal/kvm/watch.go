package kvm

import (
	"bytes"
	"io"
)

// InternalError is how qemu (accel/kvm) reports that KVM could not run the
// guest's next instruction; qemu then pauses the guest for ever. A host
// whose KVM runs Probe's test guest can still do that to a real kernel.
const InternalError = "KVM internal error"

// Watch returns a writer that passes everything on to w and calls seen,
// once, when marker has appeared in what was written, also when a write
// boundary splits it: how the callers watch qemu's output (stderr for
// InternalError, the console for a guest's first line).
func Watch(w io.Writer, marker string, seen func()) io.Writer {
	return &watch{w: w, marker: []byte(marker), seen: seen}
}

type watch struct {
	w      io.Writer
	marker []byte
	seen   func()
	tail   []byte // the end of the last write, for a marker split in two
	done   bool
}

func (m *watch) Write(p []byte) (int, error) {
	if !m.done {
		buf := append(append([]byte(nil), m.tail...), p...)
		if bytes.Contains(buf, m.marker) {
			m.done = true
			m.seen()
		}
		m.tail = buf[max(0, len(buf)-len(m.marker)):]
	}
	return m.w.Write(p)
}
