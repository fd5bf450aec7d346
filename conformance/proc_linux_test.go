package conformance

import "syscall"

// nodeProcAttr starts an erl in a process group of its own (it starts
// helper programs), dying with the thread that started it.
func nodeProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
