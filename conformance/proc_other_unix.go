//go:build unix && !linux

package conformance

import "syscall"

// dieWithUs has no portable equivalent of Linux's parent-death signal:
// the suite kills its daemons' groups itself on every way out.
func dieWithUs(*syscall.SysProcAttr) {}
