//go:build unix

package conformance

import "syscall"

// killGroup kills a process group.
func killGroup(pid int) { syscall.Kill(-pid, syscall.SIGKILL) }
