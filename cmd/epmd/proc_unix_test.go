//go:build unix

package main

import "syscall"

func killPid(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
