package main

import (
	"os"
	"time"
)

// In-place upgrade (docs/upgrade.md): on SIGUSR2 the daemon starts the
// program file at its own path again, with the same command line, and
// hands over its listening sockets, its kept registration sockets and a
// snapshot of its table on a socket pair (upgrade_linux.go):
//
//  1. old: starts the new program with its end of the pair as descriptor
//     3 and envUpgradeFD=3; keeps serving.
//  2. new: parses its command line as usual, then sends HELLO (its pid and
//     version) instead of opening sockets.
//  3. old: on HELLO, freezes (stops accepting, lets the requests it
//     accepted finish, stops watching its kept sockets) and sends the
//     sockets and the snapshot. The listening sockets stay open: new
//     connections wait in their backlog.
//  4. new: restores the owner's state from the snapshot, starts serving,
//     sends SERVING.
//  5. old: on SERVING, exits without closing anything of the sockets'
//     (the new process holds them). On FAILED, an error, the end of the
//     socket or a timeout, it kills the new process, waits for it, thaws
//     and goes on serving; it logs why.
//
// The old process serves until step 3 and from step 5 on if the upgrade
// fails; the new one from step 4, and only while the old one is frozen:
// never both, and the listening sockets are never closed.

// envUpgradeFD, in the new program's environment, is the descriptor of
// its end of the socket pair.
const envUpgradeFD = "GOPMD_UPGRADE_FD"

// envUpgradeHook makes the new program misbehave at a point of the
// takeover, for tests: "hello:die", "received:stall", "restored:fail", ...
// (points hello, received, restored; actions die, stall, fail, pause:
// half a second).
const envUpgradeHook = "GOPMD_TEST_UPGRADE_HOOK"

// Bounds of an upgrade, as seen by the old process.
const (
	// upgradeStartTimeout bounds the time from starting the new program
	// to its HELLO; the old process serves meanwhile.
	upgradeStartTimeout = 10 * time.Second
	// upgradeTakeoverTimeout bounds the time from the end of the frozen
	// state's sending to SERVING; no one accepts meanwhile.
	upgradeTakeoverTimeout = 2 * time.Second
	// upgradeDrain bounds the wait for the requests already accepted.
	upgradeDrain = time.Second
)

// statusHandedOver is serve's status when another process took over: the
// daemon exits 0 and tells systemd nothing more.
const statusHandedOver = -1

// selfPath is the program file's path at start, before any upgrade
// replaced the file: os.Executable read later would name the file
// replaced ("... (deleted)"), not its successor at the same path.
var selfPath = func() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}()
