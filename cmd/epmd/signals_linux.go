package main

import (
	"os"
	"syscall"
)

// fatalSignals are the signals whose default action ends a process but
// which the Go runtime, left to itself, catches and drops: stock epmd dies
// of them, and so does the daemon (dieOf).
var fatalSignals = []os.Signal{
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGVTALRM,
	syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGIO, syscall.SIGPWR,
}
