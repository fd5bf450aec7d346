//go:build unix

package server

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peekGone reports whether a connection's peer has already closed or reset
// it, or sent data on it (fatal for a registration socket), without
// waiting: it peeks at the socket's receive queue.
func peekGone(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = raw.Control(func(fd uintptr) {
		var b [1]byte
		_, _, perr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		// EAGAIN: nothing pending, the peer is alive. Anything else, a
		// byte, end of stream or an error, ends the registration.
		gone = perr != unix.EAGAIN && perr != unix.EINTR
	})
	return gone || err != nil
}
