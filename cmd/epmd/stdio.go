package main

import (
	"io"
)

// Stock epmd prints its interactive output with C stdio (printf, fwrite
// on stdout), so what a reader of its stdout sees in each read(2) is
// decided by glibc's buffering: line-buffered when stdout is a terminal,
// fully buffered otherwise, with the buffer flushed when the program
// exits. A reader that takes the first chunk of `epmd -names` from a pipe
// gets the header and the node lines together (OTP's epmd_SUITE does
// this); the same output written line by line would arrive in pieces.
// cStdout reproduces glibc's stdout, write for write.

// bufsiz is glibc's BUFSIZ, the buffer size when the file system gives no
// smaller preferred block size.
const bufsiz = 8192

// cStdout is a buffered writer with glibc's policy for stdout
// (libio/fileops.c _IO_new_file_xsputn, libio/filedoalloc.c):
//
//   - The buffer is allocated at the first write, of st_blksize bytes when
//     that is positive and below BUFSIZ (4096 for a pipe or a file on most
//     file systems), else BUFSIZ.
//   - Fully buffered: a write fills what room the buffer has; when the
//     data does not fit, the full buffer is written, then as many whole
//     buffer-sized blocks of the rest as there are, in one write, and the
//     remainder is kept. Before the first write there is no room, so a
//     first write of several blocks goes out directly.
//   - Line-buffered (a terminal): a write that fits is copied up to its
//     last newline and the buffer written out; what follows is kept (and
//     written out at the next newline or when the buffer is full).
//
// Flush writes out what is kept, as exit(3) does. A failed write loses
// the output from then on, as a stream with its error flag set does.
type cStdout struct {
	w        io.Writer
	size     int
	lineBuf  bool
	buf      []byte // nil until the first write
	err      error
	allocate func() (size int, lineBuf bool)
}

// newCStdout wraps w as glibc would wrap the file behind it: the mode and
// size come from w's descriptor when w is an *os.File, else (a test's
// buffer) fully buffered with BUFSIZ bytes.
func newCStdout(w io.Writer) *cStdout {
	return &cStdout{w: w, allocate: func() (int, bool) { return stdioMode(w) }}
}

func (c *cStdout) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := len(p)
	// The room the buffer has: none before the first write.
	room := 0
	if c.buf != nil {
		room = c.size - len(c.buf)
	}
	mustFlush := false
	if c.lineBuf && c.buf != nil && room >= len(p) {
		// A line-buffered write that fits goes out up to its last newline.
		for i := len(p) - 1; i >= 0; i-- {
			if p[i] == '\n' {
				room = i + 1
				mustFlush = true
				break
			}
		}
	}
	count := min(room, len(p))
	c.buf = append(c.buf, p[:count]...)
	p = p[count:]
	if len(p) == 0 && !mustFlush {
		return n, nil
	}
	// The buffer is full (or holds a line): out it goes.
	if c.buf == nil {
		c.size, c.lineBuf = c.allocate()
		c.buf = make([]byte, 0, c.size)
	} else if err := c.flush(); err != nil {
		return n - len(p), err
	}
	// Whole blocks directly, the rest into the buffer.
	direct := len(p)
	if c.size >= 128 {
		direct -= len(p) % c.size
	}
	if direct > 0 {
		if _, err := c.w.Write(p[:direct]); err != nil {
			c.err = err
			return n - len(p), err
		}
		p = p[direct:]
	}
	// glibc puts the remainder in a character at a time: the buffer goes
	// out when full, and on a line-buffered stream after each newline.
	for len(p) > 0 {
		end := min(c.size-len(c.buf), len(p))
		if c.lineBuf {
			for i, b := range p[:end] {
				if b == '\n' {
					end = i + 1
					break
				}
			}
		}
		c.buf = append(c.buf, p[:end]...)
		p = p[end:]
		if len(c.buf) == c.size || (c.lineBuf && c.buf[len(c.buf)-1] == '\n') {
			if err := c.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// Flush writes out what the buffer holds.
func (c *cStdout) Flush() error {
	if c.err != nil {
		return c.err
	}
	return c.flush()
}

func (c *cStdout) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.err = err
	}
	return err
}
