//go:build unix && !linux

package main

import "syscall"

// dieWithParentAttr: only Linux can tie a child's life to its parent's
// (PR_SET_PDEATHSIG); elsewhere the tool's cleanup stops its daemons.
func dieWithParentAttr() *syscall.SysProcAttr { return nil }
