//go:build !linux

package main

import (
	"os"
	"syscall"
)

// dieOf ends the process with the status a shell gives a process killed
// by sig (the Go runtime's handler cannot be put back to the default
// here).
func dieOf(sig syscall.Signal) {
	os.Exit(128 + int(sig))
}
