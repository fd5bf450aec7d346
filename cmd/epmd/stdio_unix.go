//go:build unix

package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// stdioMode is the C library's buffer choice (glibc's _IO_file_doallocate;
// the BSD libcs decide the same way): the buffer size and whether the
// stream is line-buffered.
func stdioMode(w io.Writer) (size int, lineBuf bool) {
	size = bufsiz
	f, ok := w.(*os.File)
	if !ok {
		return size, false
	}
	fd := int(f.Fd())
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return size, false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFCHR {
		if _, err := unix.IoctlGetTermios(fd, getTermios); err == nil {
			lineBuf = true
		}
	}
	if st.Blksize > 0 && st.Blksize < bufsiz {
		size = int(st.Blksize)
	}
	return size, lineBuf
}
