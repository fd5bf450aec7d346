package conformance

import (
	"os"
	"syscall"
)

// nodeProcAttr: Windows has neither process groups of the Unix kind nor
// a parent-death signal.
func nodeProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills the process (its helpers are not in a group).
func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
		p.Release()
	}
}
