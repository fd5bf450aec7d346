//go:build unix

package conformance

import (
	"os/exec"
	"syscall"
)

// ownGroup makes cmd the leader of a new process group, so that the
// daemon and everything it starts (a BEAM's helpers, a shell wrapper's
// children) can be ended together.
func ownGroup(cmd *exec.Cmd) {
	a := &syscall.SysProcAttr{Setpgid: true}
	dieWithUs(a)
	cmd.SysProcAttr = a
}

// killGroup kills the process group that cmd leads.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Process.Kill()
}
