package initramfs

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// Tree returns the entries of the directory tree at dir, under prefix in
// the archive: its directories, regular files and symbolic links (their
// targets as they are), each directory before what it holds, in lexical
// order. Anything else (a device, a socket, a FIFO) is refused: the
// trees an image carries have none.
func Tree(dir, prefix string) ([]Entry, error) {
	var entries []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := path.Join(prefix, filepath.ToSlash(rel))
		if name == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			entries = append(entries, Entry{Name: name, Mode: info.Mode().Perm(), Dir: true})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Name: name, Link: target})
		case d.Type().IsRegular():
			b, err := os.ReadFile(p) //nolint:gosec // G304: a build input
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Name: name, Mode: info.Mode().Perm(), Data: b})
		default:
			return fmt.Errorf("initramfs: %s is not a directory, regular file or symbolic link", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}
