//go:build unix

package main

import "syscall"

// setRcvBuf sets a socket's receive buffer size (SO_RCVBUF).
func setRcvBuf(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
