package fuzz_test

import "syscall"

// dieWithParent makes a started daemon die with the thread that started it.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
