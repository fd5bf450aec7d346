package conformance

import (
	"sync"
	"syscall"
)

// dieWithParent makes a started daemon die with the thread that started
// it, should this process die without running its cleanup.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// becomeSubreaper makes the double-forked daemon of -daemon our child
// rather than init's, so that its exit status is collected (an init that
// does not reap would keep it as a zombie).
var becomeSubreaper = sync.OnceFunc(func() {
	const prSetChildSubreaper = 36
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
})

// reap collects an exited child that os/exec does not wait for.
func reap(pid int) {
	var ws syscall.WaitStatus
	syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}
