package main

import (
	"os"
	"syscall"
)

// fatalSignals are the signals whose default action ends a process but
// which the Go runtime, left to itself, catches and drops: stock epmd dies
// of them, and so does the daemon (dieOf). SIGUSR2 is not among them on
// Linux: it asks for an in-place upgrade (upgrade.go).
var fatalSignals = []os.Signal{
	syscall.SIGUSR1, syscall.SIGALRM, syscall.SIGVTALRM,
	syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGIO, syscall.SIGPWR,
}
