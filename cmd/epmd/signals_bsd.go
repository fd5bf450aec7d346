//go:build unix && !linux

package main

import (
	"os"
	"syscall"
)

// fatalSignals: as on Linux, less SIGPWR, which the BSDs and macOS do not
// have (their SIGIO is ignored by default, so it is not here either).
var fatalSignals = []os.Signal{
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGVTALRM,
	syscall.SIGXCPU, syscall.SIGXFSZ,
}
