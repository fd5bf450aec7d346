package main

import (
	"io"
	"os"

	"golang.org/x/sys/windows"
)

// stdioMode: the buffer size, and line buffering when the stream is a
// console, as on the other systems.
func stdioMode(w io.Writer) (size int, lineBuf bool) {
	f, ok := w.(*os.File)
	if !ok {
		return bufsiz, false
	}
	var mode uint32
	return bufsiz, windows.GetConsoleMode(windows.Handle(f.Fd()), &mode) == nil
}
