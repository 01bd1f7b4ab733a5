package crilog

import (
	"io"
	"sync"
)

// logFile is the log file the entries go to, replaced on a reopen. A
// write error is kept (Err) and the writes that follow are dropped until
// the next reopen: a full disk must not block the app, whose output the
// app helper copies to the pod's journal as well.
type logFile struct {
	mu  sync.Mutex
	w   io.WriteCloser
	err error
}

func (f *logFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		_, f.err = f.w.Write(p)
	}
	return len(p), nil
}

// swap makes w the file, and closes the one before.
func (f *logFile) swap(w io.WriteCloser) {
	f.mu.Lock()
	old := f.w
	f.w, f.err = w, nil
	f.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// Err is the write error since the last swap, if any.
func (f *logFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Close closes the file.
func (f *logFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.w == nil {
		return nil
	}
	err := f.w.Close()
	f.w = nil
	return err
}
