//go:build !linux

package server

import (
	"context"
	"net"
	"net/netip"
)

// listenOne opens one listening TCP socket through the net package, which
// sets SO_REUSEADDR on Unix systems, IPV6_V6ONLY on "tcp6" sockets, and
// the system's maximum backlog. Its errors carry the failing system call
// ("socket", "bind", "listen") as *os.SyscallError, as the Linux path's do.
func listenOne(a netip.Addr, port uint16) (net.Listener, error) {
	network := "tcp4"
	if !a.Is4() {
		network = "tcp6"
	}
	var lc net.ListenConfig
	return lc.Listen(context.Background(), network, netip.AddrPortFrom(a, port).String())
}
