//go:build unix && !linux

package conformance

import "syscall"

// nodeProcAttr starts an erl in a process group of its own (it starts
// helper programs); only Linux can make it die with its parent.
func nodeProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
