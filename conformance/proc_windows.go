//go:build windows

package conformance

import "os/exec"

// ownGroup does nothing on Windows: there are no process groups to own,
// and the daemon is killed alone.
func ownGroup(cmd *exec.Cmd) {}

// killGroup kills the process cmd started.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
