//go:build !linux

package fuzz_test

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's; the
// tests' cleanup stops their daemons.
func dieWithParent() *syscall.SysProcAttr { return nil }
