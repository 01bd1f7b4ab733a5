package apiservice

import (
	"io/fs"
	"syscall"
)

func stampOf(fi fs.FileInfo) indexStamp {
	s := indexStamp{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}
