package main

import "syscall"

// fileLimit: Windows has no descriptor limit of the Unix kind; the tool
// bounds its connections by this number, the usual Unix default.
func fileLimit() int { return 1024 }

// dieWithParent: Windows cannot tie a child's life to its parent's; the
// tool's cleanup stops its daemons.
func dieWithParent() *syscall.SysProcAttr { return nil }

// cloexecInherited: Windows handles are not inherited unless asked for.
func cloexecInherited() {}

func setsockoptInt(fd uintptr, level, opt, v int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), level, opt, v)
}
