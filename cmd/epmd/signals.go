package main

import (
	"os"
	"os/signal"
	"syscall"
)

// catchSignals sets up the daemon's signals as stock epmd has them, with
// row 12 of docs/differences.md on top (SIGTERM and SIGINT end the daemon
// in order instead of killing it), and returns the channel on which
// SIGTERM and SIGINT arrive and a function that stops the delivery.
//
// A signal that was ignored when the daemon started stays ignored, as it
// does in stock, which never touches SIGINT, SIGQUIT or SIGHUP: a shell
// starts a background job with SIGINT and SIGQUIT ignored, nohup starts
// its command with SIGHUP ignored, and Ctrl-C or Ctrl-\ on the script, or
// the hang-up of its terminal, must not reach the daemon.
//
//   - SIGINT and SIGHUP: the Go runtime leaves an inherited "ignore" in
//     place, and signal.Ignored reports it; SIGINT is caught only when it
//     was not ignored (signal.Notify would replace the ignore).
//   - SIGQUIT: the Go runtime installs its own handler (a goroutine dump,
//     exit 2) before any of this program runs, so an inherited ignore
//     cannot be read back. Shells ignore SIGINT and SIGQUIT together (POSIX
//     asynchronous lists), so SIGQUIT is ignored whenever SIGINT was.
//   - SIGPIPE is always ignored, as in stock (a log write to a closed pipe
//     must not kill the daemon), and SIGHUP in the -daemon copy, as stock's
//     daemon does.
//   - SIGUSR1 and the other fatalSignals end the process as stock's
//     default action does, where the Go runtime would drop them. SIGUSR2
//     is one of them except on Linux, where it asks for an in-place
//     upgrade (upgrade.go).
func catchSignals(daemonChild bool) (<-chan os.Signal, func()) {
	caught := []os.Signal{syscall.SIGTERM}
	if signal.Ignored(syscall.SIGINT) {
		signal.Ignore(syscall.SIGQUIT)
	} else {
		caught = append(caught, syscall.SIGINT)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, caught...)
	signal.Ignore(syscall.SIGPIPE)
	if daemonChild {
		signal.Ignore(syscall.SIGHUP)
	}
	fatal := make(chan os.Signal, 1)
	signal.Notify(fatal, fatalSignals...)
	go func() {
		if sig, ok := <-fatal; ok {
			dieOf(sig.(syscall.Signal))
		}
	}()
	return sigs, func() { signal.Stop(sigs); signal.Stop(fatal) }
}
