package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// direntBufSize is the getdents buffer of the walk: the entries of a
// directory of a hundred files in one call.
const direntBufSize = 16 << 10

// dirent is a directory entry as getdents64 reports it.
type dirent struct {
	name string
	ino  uint64
	typ  uint8 // unix.DT_*
}

// readDirents returns the entries of the directory fd, but "." and "..",
// in the order the filesystem gives them, reading through buf.
func readDirents(fd int, buf []byte) ([]dirent, error) {
	var ents []dirent
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("getdents64", err)
		}
		if n == 0 {
			return ents, nil
		}
		if ents, err = parseDirents(buf[:n], ents); err != nil {
			return nil, err
		}
	}
}

// The layout of struct linux_dirent64: d_ino, d_off, d_reclen, d_type,
// then the NUL-terminated name, the record padded to 8 bytes.
const (
	direntInoOff    = 0
	direntReclenOff = 16
	direntTypeOff   = 18
	direntNameOff   = 19
)

// parseDirents appends the records of a getdents64 buffer to ents,
// skipping "." and "..". A record that does not fit the buffer, or a name
// without its terminating NUL, is an error: the kernel never writes one.
func parseDirents(b []byte, ents []dirent) ([]dirent, error) {
	for len(b) > 0 {
		if len(b) < direntNameOff+1 {
			return ents, fmt.Errorf("directory listing: %d bytes left, short of a record", len(b))
		}
		reclen := int(binary.NativeEndian.Uint16(b[direntReclenOff:]))
		if reclen < direntNameOff+1 || reclen > len(b) {
			return ents, fmt.Errorf("directory listing: record length %d of %d bytes left", reclen, len(b))
		}
		rec := b[:reclen]
		b = b[reclen:]
		name := rec[direntNameOff:]
		end := 0
		for end < len(name) && name[end] != 0 {
			end++
		}
		if end == len(name) {
			return ents, errors.New("directory listing: a name without its terminating NUL")
		}
		if end == 0 {
			return ents, errors.New("directory listing: an empty name")
		}
		name = name[:end]
		if string(name) == "." || string(name) == ".." {
			continue
		}
		ents = append(ents, dirent{
			name: string(name),
			ino:  binary.NativeEndian.Uint64(rec[direntInoOff:]),
			typ:  rec[direntTypeOff],
		})
	}
	return ents, nil
}

// direntType is the DT_* type of a file mode.
func direntType(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	}
	return unix.DT_UNKNOWN
}

// direntInos reports whether the filesystem of the directory fd is one
// whose directory entries carry the inode number stat gives for the file
// they name, so that a listing identifies its regular files: tmpfs, ext2
// to ext4, xfs and btrfs (where only a subvolume's root, a directory,
// differs). Not so on overlayfs and some network filesystems, which
// report numbers of their own in one or the other.
func direntInos(fd int) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return false
	}
	switch uint32(fs.Type) { //nolint:gosec // G115: filesystem magic numbers are 32-bit
	case unix.TMPFS_MAGIC, unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
		return true
	}
	return false
}

// listxattrat returns the size of the list of xattr names of name in the
// directory dirfd, not following it (Linux 6.13; ENOSYS before). A
// variable, so that the tests can take it away.
var listxattrat = sysListxattrat

func sysListxattrat(dirfd int, name string) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW, 0, 0, 0) //nolint:gosec // G103: the syscall takes a pointer
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}
