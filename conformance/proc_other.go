//go:build !linux

package conformance

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's
// (PR_SET_PDEATHSIG); elsewhere the harness's cleanup stops its daemons.
func dieWithParent() *syscall.SysProcAttr { return nil }

// becomeSubreaper: only Linux has child subreapers; elsewhere the
// double-forked daemon of -daemon is init's child, and init reaps it.
func becomeSubreaper() {}

// reap: orphanChildren finds none without Linux's /proc.
func reap(int) {}
