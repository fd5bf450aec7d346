//go:build unix

package main

import (
	"os"
	"strconv"
	"syscall"
)

// fileLimit returns the tool's own soft RLIMIT_NOFILE (Go raises it to the
// hard limit at start-up).
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	if rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}

// dieWithParent makes a started daemon die with the thread that started
// it, where the system can (Linux); elsewhere the tool's cleanup stops it.
func dieWithParent() *syscall.SysProcAttr { return dieWithParentAttr() }

// cloexecInherited marks every descriptor above stderr close-on-exec. Go
// opens its own that way, but descriptors the tool inherited from its
// parent without the flag would otherwise pass on to the daemon and take
// slots of its connection table (stock epmd's select() stops at fd 1023).
func cloexecInherited() {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		if fd, err := strconv.Atoi(name); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

func setsockoptInt(fd uintptr, level, opt, v int) error {
	return syscall.SetsockoptInt(int(fd), level, opt, v)
}
