package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosecone/nscn/internal/errdefs"
	"github.com/nosecone/nscn/internal/testutil"
)

// everyKind is an archive with every kind of entry, metadata extraction
// keeps, and content shape copySparse handles.
func everyKind(t testing.TB, owners bool) []ent {
	t.Helper()
	id := func(n int) int {
		if owners {
			return n
		}
		return 0
	}
	// Without root, the snapshot could not read a file without
	// permissions.
	noPerm := int64(0o400)
	if owners {
		noPerm = 0
	}
	large := strings.Repeat("0123456789abcdef", 3*copyBufSize/16+7)
	holeFirst := string(make([]byte, 2*holeBlock)) + "data after a hole"
	holeLast := "data before a hole" + string(make([]byte, 3*holeBlock))
	mixed := strings.Repeat("x", holeBlock) + string(make([]byte, holeBlock)) + strings.Repeat("y", holeBlock+1)
	ents := []ent{
		dirEnt("rootfs", 0o755),
		dirEnt("rootfs/bin", 0o755),
		dirEnt("rootfs/ro", 0o555),
		{name: "rootfs/setgid", typ: tar.TypeDir, mode: 0o2775, uid: id(10), gid: id(20)},
		fileEnt("rootfs/bin/sh", "#!/bin/sh\n"),
		{name: "rootfs/bin/su", typ: tar.TypeReg, body: "elf", mode: 0o4755, uid: id(0), gid: id(5)},
		{name: "rootfs/bin/wall", typ: tar.TypeReg, body: "elf", mode: 0o2755, uid: id(0), gid: id(5)},
		{name: "rootfs/ro/file", typ: tar.TypeReg, body: "read only", mode: 0o444},
		{name: "rootfs/ro/none", typ: tar.TypeReg, body: "no permissions", mode: noPerm},
		{name: "rootfs/ro/world", typ: tar.TypeReg, body: "world writable", mode: 0o666},
		{name: "rootfs/setgid/inherits", typ: tar.TypeReg, body: "g", mode: 0o640, uid: id(10), gid: id(30)},
		{name: "rootfs/setgid/creator", typ: tar.TypeReg, body: "c", mode: 0o640},
		{name: "rootfs/owned", typ: tar.TypeReg, body: "o", mode: 0o600, uid: id(1000), gid: id(1000)},
		fileEnt("rootfs/empty", ""),
		fileEnt("rootfs/large", large),
		fileEnt("rootfs/hole-first", holeFirst),
		fileEnt("rootfs/hole-last", holeLast),
		fileEnt("rootfs/mixed", mixed),
		fileEnt("rootfs/zeros", string(make([]byte, holeBlock))),
		{name: "rootfs/xattr", typ: tar.TypeReg, body: "x", mode: 0o644, xattrs: map[string]string{"user.nscn.a": "1", "user.nscn.b": "two"}},
		{name: "rootfs/old", typ: tar.TypeReg, body: "old times", mode: 0o644, mtime: time.Date(1999, 12, 31, 23, 59, 59, 123456789, time.UTC)},
		symlinkEnt("rootfs/bin/sh-link", "sh"),
		symlinkEnt("rootfs/abs", "/etc/passwd"),
		hardlinkEnt("rootfs/bin/sh-hard", "rootfs/bin/sh"),
		hardlinkEnt("rootfs/ro/large-hard", "rootfs/large"),
		fifoEnt("rootfs/fifo"),
	}
	// Files spread over directories in no particular order, as the bench
	// image lists them.
	ents = append(ents, dirEnt("rootfs/many", 0o755))
	for i := range 200 {
		d := "rootfs/many/d" + string(rune('a'+i%13))
		if i < 13 {
			ents = append(ents, dirEnt(d, 0o755))
		}
		ents = append(ents, fileEnt(d+"/f"+strings.Repeat("n", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("c", i*37)))
	}
	return ents
}

// TestExtractParallelMatchesSerial: the workers leave the very tree the
// serial extraction leaves (contents, holes aside, modes, owners, times,
// xattrs, hardlinks), whatever the archive's format.
func TestExtractParallelMatchesSerial(t *testing.T) {
	owners := os.Geteuid() == 0
	formats := func(f tar.Format) func(t testing.TB) [][]byte {
		return func(t testing.TB) [][]byte {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range everyKind(t, owners) {
				hdr := e.header()
				hdr.Format = f
				if f != tar.FormatPAX {
					hdr.PAXRecords = nil
					hdr.ModTime = hdr.ModTime.Truncate(time.Second)
				}
				if err := tw.WriteHeader(hdr); err != nil {
					t.Fatalf("%v: %s: %v", f, e.name, err)
				}
				if _, err := tw.Write([]byte(e.body)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			return [][]byte{buf.Bytes()}
		}
	}
	long := strings.Repeat("long-name-", 12)
	tests := []struct {
		name     string
		archives func(t testing.TB) [][]byte
	}{
		{name: "pax", archives: formats(tar.FormatPAX)},
		{name: "gnu", archives: formats(tar.FormatGNU)},
		{name: "gnu long names", archives: func(t testing.TB) [][]byte {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, e := range []ent{dirEnt("rootfs", 0o755), dirEnt("rootfs/"+long, 0o755), fileEnt("rootfs/"+long+"/"+long, "after a long name"), symlinkEnt("rootfs/l", long+"/"+long), hardlinkEnt("rootfs/h", "rootfs/"+long+"/"+long), fileEnt("rootfs/next", "next")} {
				hdr := e.header()
				hdr.Format = tar.FormatGNU
				if err := tw.WriteHeader(hdr); err != nil {
					t.Fatal(err)
				}
				if _, err := tw.Write([]byte(e.body)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			return [][]byte{buf.Bytes()}
		}},
		{name: "gnu tar sparse, old gnu format", archives: gnuTarSparse("--format=gnu")},
		{name: "gnu tar sparse, pax format", archives: gnuTarSparse("--format=posix")},
		{name: "layers replacing each other", archives: func(t testing.TB) [][]byte {
			return [][]byte{
				buildTar(t, everyKind(t, owners)...),
				buildTar(t,
					dirEnt("rootfs", 0o755),
					fileEnt("rootfs/bin", "a file where a directory was"),
					dirEnt("rootfs/large", 0o700),
					fileEnt("rootfs/large/inside", "in the new directory"),
				),
				buildTar(t,
					dirEnt("rootfs", 0o755),
					dirEnt("rootfs/many", 0o755),
					dirEnt("rootfs/ro", 0o555),
					symlinkEnt("rootfs/many/da", "../ro"),
					fileEnt("rootfs/many/da/through-link", "lands in ro"),
					fileEnt("rootfs/empty", "no longer empty"),
					fileEnt("rootfs/old", "replaced"),
					hardlinkEnt("rootfs/xattr", "rootfs/old"),
					fileEnt("rootfs/old", "replaced again; the hardlink keeps the content before"),
				),
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archives := tt.archives(t)
			// The workers reading an archive in memory, the workers and the
			// tar reader's mapping of an archive file, and the serial
			// extraction.
			var snaps [3]string
			for i, tune := range []tuning{{}, {}, {serial: true}} {
				dest := t.TempDir()
				t.Cleanup(func() { makeWritable(dest) })
				for n, a := range archives {
					opts := ExtractOptions{PreserveOwnership: owners, Hash: sha256.New}
					var r io.Reader = bytes.NewReader(a)
					if i == 1 {
						r = archiveFile(t, a)
					}
					if err := extract(context.Background(), r, dest, opts, tune); err != nil {
						t.Fatalf("run %d (serial=%v), archive %d: %v", i, tune.serial, n, err)
					}
				}
				snaps[i] = snapshot(t, dest)
			}
			if snaps[0] != snaps[2] {
				t.Errorf("workers and serial differ (workers -, serial +):\n%s", diffSnapshots(snaps[0], snaps[2]))
			}
			if snaps[1] != snaps[2] {
				t.Errorf("workers from an archive file and serial differ (workers -, serial +):\n%s", diffSnapshots(snaps[1], snaps[2]))
			}
		})
	}
}

// gnuTarSparse makes an archive with GNU tar's --sparse, whose entries
// archive/tar reassembles: they are written inline even with workers.
func gnuTarSparse(format string) func(t testing.TB) [][]byte {
	return func(t testing.TB) [][]byte {
		tarBin := testutil.RequiresCommand(t, "tar")
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "rootfs", "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filepath.Join(dir, "rootfs", "d", "sparse"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644) //nolint:gosec // G304: a file the test made
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 1 << 20, 3 << 20} {
			if _, err := f.WriteAt([]byte("island"), off); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Truncate(4 << 20); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rootfs", "d", "after"), []byte("after the sparse file"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tarBin, "-C", dir, "--sparse", format, "--sort=name", "-cf", "-", "rootfs").Output() //nolint:gosec // G204: the test runs its own binary or a fixed tool, argv built by the test
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		return [][]byte{out}
	}
}

// TestExtractRootfsWorkerErrors: a file whose content a worker cannot
// read (the archive ends inside it) or a cancellation while workers write
// fails the extraction, and extract returns only once no worker writes
// into dest any more.
func TestExtractRootfsWorkerErrors(t *testing.T) {
	var ents []ent
	for i := range 100 {
		ents = append(ents, fileEnt("rootfs/f"+strings.Repeat("x", i), strings.Repeat("z", 50000)))
	}
	full := buildTar(t, ents...)
	// Cut inside the content of a file half way.
	cut := len(full)/2 + bytes.Index(full[len(full)/2:], []byte("zzzz")) + 100
	tests := []struct {
		name    string
		archive []byte
		file    bool // an archive file, which the tar reader maps
		cancel  bool
		want    error
	}{
		{name: "archive ends inside a file", archive: full[:cut], want: errdefs.ErrInvalidArgument},
		{name: "archive file ends inside a file", archive: full[:cut], file: true, want: errdefs.ErrInvalidArgument},
		{name: "cancelled", archive: full, cancel: true, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := ExtractOptions{}
			if tt.cancel {
				n := 0
				opts.Filter = func(string) bool {
					if n++; n == 50 {
						cancel()
					}
					return true
				}
			}
			var r io.Reader = bytes.NewReader(tt.archive)
			if tt.file {
				r = archiveFile(t, tt.archive)
			}
			err := extract(ctx, r, dest, opts, tuning{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("extract = %v, want %v", err, tt.want)
			}
			before := snapshot(t, dest)
			time.Sleep(50 * time.Millisecond)
			if after := snapshot(t, dest); after != before {
				t.Errorf("dest changed after extract returned:\n%s", diffSnapshots(before, after))
			}
		})
	}
}

// TestPosReader: reads through the buffer, seeks inside and outside it,
// and the end of the data, as archive/tar uses them.
func TestPosReader(t *testing.T) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	tests := []struct {
		name  string
		start int64
		ops   []int64 // > 0: read that many bytes; <= 0: seek forward by -op
		want  []byte
	}{
		{name: "whole", ops: []int64{1000}, want: data},
		{name: "from an offset", start: 10, ops: []int64{5}, want: data[10:15]},
		{name: "seek inside the buffer", ops: []int64{3, -10, 3}, want: append(append([]byte{}, data[0:3]...), data[13:16]...)},
		{name: "seek past the buffer", ops: []int64{1, -500, 2}, want: append(append([]byte{}, data[0:1]...), data[501:503]...)},
		{name: "large read", ops: []int64{-100, 900}, want: data[100:]},
		{name: "read past the end", ops: []int64{-990, 50}, want: data[990:]},
	}
	// Each case through the buffered reads and through a mapping of the
	// archive (posReader.mapped), which must read the same bytes.
	for _, mapped := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if mapped {
				name += ", mapped"
			}
			t.Run(name, func(t *testing.T) {
				p := newPosReader(bytes.NewReader(data), tt.start, 64)
				if mapped {
					p = newPosReader(bytes.NewReader(nil), tt.start, 64)
					p.mapped = data
				}
				var got []byte
				for _, op := range tt.ops {
					if op <= 0 {
						if _, err := p.Seek(-op, io.SeekCurrent); err != nil {
							t.Fatal(err)
						}
						continue
					}
					b, err := io.ReadAll(io.LimitReader(p, op))
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, b...)
				}
				if !bytes.Equal(got, tt.want) {
					t.Errorf("read %d bytes %v, want %d bytes", len(got), got[:min(len(got), 8)], len(tt.want))
				}
				if _, err := p.Seek(int64(len(data))+5, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				if n, err := p.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
					t.Errorf("read past the end = %d, %v, want io.EOF", n, err)
				}
			})
		}
	}
	p := newPosReader(bytes.NewReader(data), 0, 64)
	if _, err := p.Seek(-1, io.SeekCurrent); err == nil {
		t.Error("seek to a negative position succeeded")
	}
	if _, err := p.Seek(0, io.SeekEnd); err == nil {
		t.Error("seek from the end succeeded")
	}
}

// TestParseUmask reads the Umask line of /proc/PID/status.
func TestParseUmask(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   uint32
		ok     bool
	}{
		{name: "usual", status: "Name:\tnscn\nUmask:\t0022\nState:\tR (running)\n", want: 0o22, ok: true},
		{name: "zero", status: "Umask:\t0000\n", want: 0, ok: true},
		{name: "strict", status: "Umask:\t0077", want: 0o77, ok: true},
		{name: "no umask line (before linux 4.7)", status: "Name:\tnscn\nState:\tR\n"},
		{name: "not octal", status: "Umask:\t0089\n"},
		{name: "too long", status: "Umask:\t00022\n"},
		{name: "empty", status: "Umask:\t\n"},
		{name: "nothing", status: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseUmask([]byte(tt.status))
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseUmask = %o, %v, want %o, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if m, ok := processUmask(); ok {
		old := unix.Umask(int(m))
		if old != int(m) {
			t.Errorf("processUmask = %o, umask(2) says %o", m, old)
		}
	}
}

func FuzzParseUmask(f *testing.F) {
	f.Add([]byte("Umask:\t0022\n"))
	f.Add([]byte("Name:\tx\nUmask:\t7777\n"))
	f.Add([]byte("Umask:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ok := parseUmask(b); ok && m > 0o7777 {
			t.Fatalf("parseUmask(%q) = %o, more than twelve bits", b, m)
		}
	})
}

// defaultACL is a system.posix_acl_default value: user::rwx, group::---,
// other::---. Files created below it get no group or other permissions,
// whatever the umask.
func defaultACL() []byte {
	b := []byte{2, 0, 0, 0} // version 2, little endian
	for _, e := range []struct{ tag, perm uint16 }{{0x01, 7}, {0x04, 0}, {0x20, 0}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = append(b, 0xff, 0xff, 0xff, 0xff) // ACL_UNDEFINED_ID
	}
	return b
}

// TestExtractRootfsUnderDefaultACL: a default ACL replaces the umask, so
// files created under one are chmod'ed to their entry's mode like any
// file the umask would have changed.
func TestExtractRootfsUnderDefaultACL(t *testing.T) {
	dest := t.TempDir()
	d, err := os.Open(dest) //nolint:gosec // G304: a directory the test made
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	if hasDefaultACL(d) {
		t.Fatal("a fresh temporary directory has a default ACL (or /proc is missing)")
	}
	if err := unix.Setxattr(dest, "system.posix_acl_default", defaultACL(), 0); err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("no ACLs on the test directory's filesystem: %v", err)
		}
		t.Fatal(err)
	}
	if !hasDefaultACL(d) {
		t.Fatal("default ACL not seen")
	}
	for _, tune := range []tuning{{}, {serial: true}} {
		sub := filepath.Join(dest, map[bool]string{false: "workers", true: "serial"}[tune.serial])
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		tb := buildTar(t, dirEnt("rootfs", 0o755), fileEnt("rootfs/file", "f"), dirEnt("rootfs/d", 0o755), fileEnt("rootfs/d/file", "g"))
		if err := extract(context.Background(), bytes.NewReader(tb), sub, ExtractOptions{}, tune); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"file", "d/file"} {
			if m := lstat(t, filepath.Join(sub, p)).Mode & 0o7777; m != 0o644 {
				t.Errorf("serial=%v: %s has mode %o, want 644", tune.serial, p, m)
			}
		}
	}
}

// makeWritable gives the owner write permission on every directory below
// dir, which read-only directories of an archive deny a non-root caller
// that wants to remove them.
func makeWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700) //nolint:gosec // G302: a directory, which needs x to be searched
		}
		return nil
	})
}

// TestExtractDirectoryCacheSizes: a directory cache that must close
// directories to make room (and reopens them, keeping what it knew of
// them), or that grows the descriptor table beside the extraction and
// then takes every directory, leaves the tree a cache of every directory
// leaves: files spread over hundreds of directories in no order, some of
// them setgid directories of an earlier layer, owners kept where the test
// runs as root.
func TestExtractDirectoryCacheSizes(t *testing.T) {
	owners := os.Geteuid() == 0
	ents := []ent{dirEnt("rootfs", 0o755)}
	const dirs = 300
	for d := range dirs {
		e := dirEnt(fmt.Sprintf("rootfs/d%03d", d), 0o755)
		if d%5 == 0 {
			e.mode = 0o2775
			if owners {
				e.gid = 20
			}
		}
		ents = append(ents, e)
	}
	lower := buildTar(t, ents...)
	ents = []ent{dirEnt("rootfs", 0o755)}
	for i := range 1500 {
		d := (i * 7919) % dirs // every directory, in no order
		e := ent{name: fmt.Sprintf("rootfs/d%03d/f%04d", d, i), typ: tar.TypeReg, body: strings.Repeat("b", i%97), mode: 0o644}
		if owners && i%3 == 0 {
			e.uid, e.gid = 1000, 1000
		}
		ents = append(ents, e)
	}
	upper := buildTar(t, ents...)
	var snaps []string
	for _, tune := range []tuning{{dirCache: 1024, noGrow: true}, {dirCache: 16, noGrow: true}, {dirCache: 16}, {}} {
		dest := t.TempDir()
		opts := ExtractOptions{PreserveOwnership: owners, Hash: sha256.New}
		for _, a := range [][]byte{lower, upper} {
			if err := extract(context.Background(), bytes.NewReader(a), dest, opts, tune); err != nil {
				t.Fatalf("%+v: %v", tune, err)
			}
		}
		// The upper layer adds to the directories without an entry for
		// them: their times are those of the last file added.
		snaps = append(snaps, snapshotIgnoringDirTimes(t, dest))
	}
	for i, s := range snaps[1:] {
		if s != snaps[0] {
			t.Errorf("cache %d differs from a cache of every directory (-, +):\n%s", i+1, diffSnapshots(snaps[0], s))
		}
	}
}

// TestSmallTableCache: the cache leaves the descriptors extraction holds
// below the size past which the table's growth waits, and never goes
// below 16.
func TestSmallTableCache(t *testing.T) {
	if n := smallTableCache(10); 10+n+fileQueue+runtime.GOMAXPROCS(0)+fdSlack > smallTable {
		t.Errorf("smallTableCache(10) = %d: past %d descriptors", n, smallTable)
	}
	if n := smallTableCache(1000); n != 16 {
		t.Errorf("smallTableCache(1000) = %d, want 16", n)
	}
}

// archiveFile writes the archive a to a file and returns it open, at its
// start: what the store hands extraction, which the tar reader maps.
func archiveFile(t testing.TB, a []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(p, a, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p) //nolint:gosec // G304: a file the test made
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestPosReaderMappedFileShrinks: a read of the mapping past the end of a
// file truncated since it was mapped is an error, not a crash (SIGBUS),
// on a goroutine that asked for faults to panic, as extraction's does.
func TestPosReaderMappedFileShrinks(t *testing.T) {
	page := os.Getpagesize()
	f := archiveFile(t, bytes.Repeat([]byte("a"), 3*page))
	if m, _ := mapArchive(bytes.NewReader(nil)); m != nil {
		t.Fatal("mapArchive mapped a reader that is not a file")
	}
	m, unmap := mapArchive(f)
	if m == nil {
		t.Fatal("mapArchive did not map a regular file")
	}
	defer unmap()
	if len(m) != 3*page {
		t.Fatalf("mapped %d bytes, want %d", len(m), 3*page)
	}
	if err := os.Truncate(f.Name(), 0); err != nil {
		t.Fatal(err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	p := newPosReader(f, int64(page), 64)
	p.mapped = m
	n, err := p.Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, errShrunk) {
		t.Errorf("read of the mapping past the new end = %d, %v, want %v", n, err, errShrunk)
	}
}

// namesAndDirs lists the names under root with their types, and the
// modes, owners, times and xattrs of the directories: what NamesDone
// promises final.
func namesAndDirs(t testing.TB, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %v", rel, d.Type())
		if d.IsDir() {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			n, _ := unix.Llistxattr(p, nil)
			fmt.Fprintf(&b, " %o %d:%d %d.%d xattrs %d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, n)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestExtractNamesDone: NamesDone is called once, on the goroutine that
// extracts, when every name is there and every directory has its final
// metadata, with the workers or without; not when the archive fails
// before that.
func TestExtractNamesDone(t *testing.T) {
	owners := os.Geteuid() == 0
	archive := buildTar(t, everyKind(t, owners)...)
	for _, file := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive file %v", file), func(t *testing.T) {
			dest := t.TempDir()
			var r io.Reader = bytes.NewReader(archive)
			if file {
				r = archiveFile(t, archive)
			}
			calls := 0
			var atNamesDone string
			opts := ExtractOptions{PreserveOwnership: owners, Hash: sha256.New, NamesDone: func() {
				calls++
				atNamesDone = namesAndDirs(t, dest)
			}}
			if err := extract(context.Background(), r, dest, opts, tuning{}); err != nil {
				t.Fatal(err)
			}
			if calls != 1 {
				t.Fatalf("NamesDone called %d times", calls)
			}
			if after := namesAndDirs(t, dest); after != atNamesDone {
				t.Errorf("names or directories changed after NamesDone:\n%s", diffSnapshots(atNamesDone, after))
			}
		})
	}
	t.Run("archive ends inside a file", func(t *testing.T) {
		// Inside the content of rootfs/large.
		cut := bytes.Index(archive, []byte("0123456789abcdef")) + 100
		called := false
		opts := ExtractOptions{NamesDone: func() { called = true }}
		if err := extract(context.Background(), archiveFile(t, archive[:cut]), t.TempDir(), opts, tuning{}); err == nil {
			t.Fatal("extract of a cut archive succeeded")
		}
		if called {
			t.Error("NamesDone called for an archive that failed")
		}
	})
}
