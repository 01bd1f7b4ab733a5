package aci

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
)

const (
	// posBufSize is the read size of the tar reader over an archive file:
	// the headers and contents of some twenty small entries.
	posBufSize = 64 << 10
	// fileQueue is how many created files may wait for a worker. Each
	// holds an open descriptor.
	fileQueue = 64
)

// fileJob is a regular file the extraction goroutine has created (fd,
// empty) and that still needs its content and metadata.
type fileJob struct {
	fd    int
	rel   string
	hdr   *tar.Header
	off   int64 // where the content starts in the archive file (workers)
	chown bool  // the owner differs from the entry's
	chmod bool  // the mode differs from the entry's
}

// contiguous reports whether the entry's content is hdr.Size bytes stored
// as they are right after its header, which a worker can read with ReadAt.
// Sparse entries (old GNU, or GNU's PAX records) are reassembled by
// archive/tar and are written inline.
func contiguous(hdr *tar.Header) bool {
	if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeCont {
		return false
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return false
		}
	}
	return true
}

// startWorkers starts the goroutines that write the files writeFile
// queues, reading their contents from ra. Creating names stays on the
// extraction goroutine, in archive order, so that every lookup, removal,
// hardlink and symlink sees the tree exactly as a serial extraction would;
// a worker touches nothing but the descriptor it is given. One worker per
// processor Go may use: the tar reader's goroutine mostly waits on system
// calls.
func (x *extractor) startWorkers(ra io.ReaderAt) {
	x.files = make(chan fileJob, fileQueue)
	for range runtime.GOMAXPROCS(0) {
		x.work.Add(1)
		go x.fileWorker(ra)
	}
}

// stopWorkers waits for the queued files to be written and returns the
// first error of a worker. It may be called more than once.
func (x *extractor) stopWorkers() error {
	if x.files != nil {
		close(x.files)
		x.work.Wait()
		x.files = nil
	}
	return x.workerErr()
}

func (x *extractor) workerErr() error {
	if p := x.workErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the extraction's error unless one is already
// recorded; the workers then only close what is still queued.
func (x *extractor) fail(err error) { x.workErr.CompareAndSwap(nil, &err) }

func (x *extractor) fileWorker(ra io.ReaderAt) {
	defer x.work.Done()
	buf := make([]byte, copyBufSize)
	var h hash.Hash
	if x.opts.Hash != nil {
		h = x.opts.Hash()
	}
	for j := range x.files {
		var err error
		if x.workErr.Load() == nil {
			err = x.fillFile(j, io.NewSectionReader(ra, j.off, j.hdr.Size), buf, h, nil)
		}
		if cerr := unix.Close(j.fd); cerr != nil && err == nil {
			err = sysErr("close", j.rel, cerr)
		}
		if err != nil {
			x.fail(fmt.Errorf("extract rootfs entry %q: %w", j.hdr.Name, err))
		}
	}
}

// fillFile writes the content of j from r, then its owner, mode, xattrs
// and times, and gives it to opts.Content. rec is the recorder of r when r
// is the tar reader (to classify its errors), nil when r reads the archive
// file directly.
func (x *extractor) fillFile(j fileJob, r io.Reader, buf []byte, h hash.Hash, rec *errRecorder) error {
	if h != nil {
		h.Reset()
	}
	if err := x.copySparse(j.fd, r, j.hdr.Size, buf, h, rec); err != nil {
		return err
	}
	hdr, rel := j.hdr, j.rel
	if j.chown {
		if err := unix.Fchown(j.fd, hdr.Uid, hdr.Gid); err != nil {
			return sysErr("fchown", rel, err)
		}
	}
	// After chown, which clears the setuid and setgid bits.
	if j.chmod || j.chown {
		if err := unix.Fchmod(j.fd, entryPerm(hdr)); err != nil {
			return sysErr("fchmod", rel, err)
		}
	}
	if err := x.setXattrs(hdr, rel, func(name string, val []byte) error {
		return unix.Fsetxattr(j.fd, name, val, 0)
	}); err != nil {
		return err
	}
	atime, mtime := entryTimes(hdr)
	if err := futimens(j.fd, &[2]unix.Timespec{atime, mtime}); err != nil {
		return sysErr("futimens", rel, err)
	}
	if x.opts.Content != nil {
		f := WrittenFile{Path: rel, Fd: j.fd}
		if h != nil {
			f.Digest = h.Sum(nil)
		}
		x.opts.Content(f)
	}
	return nil
}

// copySparse copies size bytes of content from r into fd, an empty file,
// seeking over zero blocks instead of writing them, and feeds every byte,
// zeros included, to h when it is not nil.
func (x *extractor) copySparse(fd int, r io.Reader, size int64, buf []byte, h hash.Hash, rec *errRecorder) error {
	var off, written int64 // bytes consumed; end of the last write
	for off < size {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		n, rerr := fill(r, buf[:min(int64(len(buf)), size-off)])
		chunk := buf[:n]
		if h != nil {
			h.Write(chunk)
		}
		for len(chunk) > 0 {
			// Gather a run of data blocks and write it in one call.
			end := 0
			for end < len(chunk) {
				blk := chunk[end:min(end+holeBlock, len(chunk))]
				if bytes.Equal(blk, zeroBlock[:len(blk)]) {
					break
				}
				end += len(blk)
			}
			if end > 0 {
				if err := pwriteAll(fd, chunk[:end], off); err != nil {
					return fmt.Errorf("write content: %w", err)
				}
				off += int64(end)
				written = off
				chunk = chunk[end:]
				continue
			}
			blk := min(holeBlock, len(chunk))
			off += int64(blk)
			chunk = chunk[blk:]
		}
		if rerr != nil && (!errors.Is(rerr, io.EOF) || off < size) {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			if rec != nil {
				return classifyTarError("read content", rec, rerr)
			}
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				return errdefs.With(errdefs.ErrInvalidArgument, fmt.Errorf("read content: archive ends inside it: %w", rerr))
			}
			return fmt.Errorf("read content: %w", rerr)
		}
	}
	if written < off {
		// The file ends in a hole.
		if err := unix.Ftruncate(fd, off); err != nil {
			return fmt.Errorf("set size: %w", &os.PathError{Op: "ftruncate", Err: err})
		}
	}
	return nil
}

// pwriteAll writes b at off, retrying short writes and EINTR.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "pwrite", Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "pwrite", Err: io.ErrShortWrite}
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// futimens sets the access and modification times of fd: utimensat with a
// NULL path, which x/sys/unix has no wrapper for (UtimesNanoAt always
// passes a path).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0) //nolint:gosec // G103: the syscall takes a pointer
	if errno != 0 {
		return errno
	}
	return nil
}

// processUmask returns the process's umask, read from /proc/self/status
// (Linux 4.7 and later): umask(2) cannot read it without setting it, which
// would race with other goroutines creating files.
func processUmask() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseUmask(b)
}

// parseUmask finds the "Umask:" line of a /proc/PID/status file: an octal
// number of at most four digits.
func parseUmask(status []byte) (uint32, bool) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		v, ok := bytes.CutPrefix(line, []byte("Umask:"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || len(v) > 4 {
			return 0, false
		}
		var m uint32
		for _, c := range v {
			if c < '0' || c > '7' {
				return 0, false
			}
			m = m<<3 | uint32(c-'0')
		}
		return m, true
	}
	return 0, false
}

// mapArchive maps the archive file under ra read-only, whole, for the tar
// reader (posReader.mapped), or returns nil when ra is not a regular file
// that can be mapped; unmap releases it. The store's blobs are never
// written once in place, so the mapping holds the bytes pread would read.
func mapArchive(ra io.ReaderAt) (data []byte, unmap func()) {
	f, ok := ra.(*os.File)
	if !ok {
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size <= 0 || st.Size > math.MaxInt {
		return nil, nil
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	return data, func() { _ = unix.Munmap(data) }
}
