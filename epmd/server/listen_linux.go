package server

import (
	"net"
	"net/netip"
	"os"
	"syscall"
)

// listenOne opens one listening TCP socket the way stock epmd does, with
// plain system calls so that every address gets to bind() and fails there
// with the kernel's own errno (Go's resolver would refuse an IPv4-mapped
// IPv6 address before that): IPV6_V6ONLY on IPv6 sockets, SO_REUSEADDR,
// and the largest backlog the kernel allows (it caps at somaxconn).
func listenOne(a netip.Addr, port uint16) (net.Listener, error) {
	var sa syscall.Sockaddr
	family := syscall.AF_INET
	if a.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(port), Addr: a.As4()}
	} else {
		family = syscall.AF_INET6
		sa = &syscall.SockaddrInet6{Port: int(port), Addr: a.As16()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "epmd listener "+netip.AddrPortFrom(a, port).String())
	defer f.Close() // FileListener works on a duplicate
	if family == syscall.AF_INET6 {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1); err != nil {
			return nil, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if err := syscall.Listen(fd, maxBacklog); err != nil {
		return nil, os.NewSyscallError("listen", err)
	}
	return net.FileListener(f)
}

// maxBacklog is passed to listen(2); Linux silently caps it at
// net.core.somaxconn, which is what stock epmd's SOMAXCONN amounts to.
const maxBacklog = 65535
