package server

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// MaxListeners is how many listening sockets stock epmd can have
// (MAX_LISTEN_SOCKETS), the two implicit loopback ones included.
const MaxListeners = 16

// maxListed is how many addresses an address list may hold, as in OTP 29:
// every address counts, loopback ones too, and the 14th is refused with
// "cannot listen on more than 14 IP addresses" (maxListedText). OTP 25 and
// 27 count only the non-loopback ones, with the two loopback sockets, and
// refuse the 14th of those with "... more than 16 IP addresses".
const maxListed = 13

// maxListedText is the number OTP 29's refusal names.
const maxListedText = maxListed + 1

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// ErrAddrInUse is matched (errors.Is) by the error of Listen when a socket
// could not be bound because its address and port are taken. Stock epmd
// then assumes another epmd is running there and exits with status 0.
var ErrAddrInUse = errors.New("address already in use")

// ParseError is the error of ParseAddresses. Its text is stock epmd's
// message, e.g. `cannot parse IP address "localhost"`.
type ParseError struct {
	Token string // the offending token; empty for too many addresses
	msg   string
}

func (e *ParseError) Error() string { return e.msg }

// ParseAddresses parses an -address list (or ERL_EPMD_ADDRESS) the way stock
// epmd of OTP 29 does. Tokens are separated by any run of commas and
// spaces; each must be a numeric IPv6 or IPv4 address (no host names, no
// zones). Every address is kept, in order, loopback ones and duplicates
// too (binding the second copy of an address then fails with
// ErrAddrInUse, as it does in stock epmd); Listen adds the loopback
// addresses the list does not cover. More than 13 addresses is an error.
//
// A list with no token at all (empty, or only separators) gives nil, nil:
// no list, so Listen binds the wildcard addresses.
//
// Errors come in the order stock epmd meets them, token by token.
func ParseAddresses(list string) ([]netip.Addr, error) {
	tokens := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' })
	if len(tokens) == 0 {
		return nil, nil
	}
	addrs := []netip.Addr{}
	for _, tok := range tokens {
		a, ok := parseNumericAddr(tok)
		if !ok {
			return nil, &ParseError{Token: tok, msg: `cannot parse IP address "` + tok + `"`}
		}
		addrs = append(addrs, a)
		if len(addrs) > maxListed {
			return nil, &ParseError{msg: "cannot listen on more than " + strconv.Itoa(maxListedText) + " IP addresses"}
		}
	}
	return addrs, nil
}

// parseNumericAddr accepts what inet_pton(AF_INET6) or inet_pton(AF_INET)
// accepts. netip.ParseAddr agrees with glibc on both forms (including the
// refusal of IPv4 octets with leading zeros) except that it also takes
// an IPv6 zone, which inet_pton does not.
func parseNumericAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// BindError reports a socket Listen could not open. Its text is stock
// epmd's, e.g. "failed to bind on ipaddr 1.2.3.4: Cannot assign requested
// address". It matches ErrAddrInUse when the address was taken.
type BindError struct {
	Op   string // the failing system call: "bind", "listen", "socket", "setsockopt"
	Addr netip.Addr
	Port uint16
	Err  error // the system call error
}

func (e *BindError) Error() string {
	switch e.Op {
	case "bind":
		return "failed to bind on ipaddr " + e.Addr.String() + ": " + Strerror(e.Err)
	case "listen":
		return "failed to listen on ipaddr " + e.Addr.String() + ": " + Strerror(e.Err)
	}
	return "error opening stream socket: " + Strerror(e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// Is reports ErrAddrInUse for EADDRINUSE.
func (e *BindError) Is(target error) bool {
	return target == ErrAddrInUse && errors.Is(e.Err, syscall.EADDRINUSE)
}

// NoListenerError is the error of Listen when no socket could be bound at
// all. Last is the last failure that was skipped, if any.
type NoListenerError struct{ Last error }

func (e *NoListenerError) Error() string {
	if e.Last == nil {
		return "unable to bind any address"
	}
	return "unable to bind any address: " + Strerror(e.Last)
}

func (e *NoListenerError) Unwrap() error { return e.Last }

// Listen opens stock epmd's listening sockets on port (used modulo 65536,
// as stock epmd stores it in an unsigned short):
//
//   - addrs nil (no list): 0.0.0.0 and [::], the IPv6 socket IPV6_V6ONLY,
//     so the two never conflict;
//   - addrs not nil (from ParseAddresses): each address in order, then
//     127.0.0.1 unless the list has 127.0.0.1 or 0.0.0.0, then [::1] unless
//     it has ::1 or ::. So -address 0.0.0.0 listens on 0.0.0.0 and [::1],
//     and -address :: on [::] and 127.0.0.1, as OTP 29's epmd does (OTP 25
//     and 27 bind both loopback addresses first, whatever the list, so
//     that a wildcard in it fails with EADDRINUSE; docs/epmd.md).
//
// Every socket has SO_REUSEADDR and the system's maximum backlog.
//
// An address family the system does not support is skipped. Other bind
// failures on loopback sockets, listed or added, are skipped too (hosts
// with IPv6 disabled), but on other listed addresses and on the wildcard
// sockets they are fatal: Listen closes what it opened and returns a *BindError, which
// matches ErrAddrInUse when the address was taken. When nothing at all
// could be bound it returns a *NoListenerError.
func Listen(addrs []netip.Addr, port int) ([]net.Listener, error) {
	return ListenReport(addrs, port, nil)
}

// ListenReport is Listen, calling skipped (when not nil) with each bind
// failure it tolerates. Stock epmd logs those at level 0.
func ListenReport(addrs []netip.Addr, port int, skipped func(error)) ([]net.Listener, error) {
	p := uint16(port)
	type target struct {
		addr     netip.Addr
		nonfatal bool
	}
	var targets []target
	if addrs == nil {
		targets = []target{{addr: netip.IPv4Unspecified()}, {addr: netip.IPv6Unspecified()}}
	} else {
		for _, a := range addrs {
			targets = append(targets, target{addr: a, nonfatal: a == loopback4 || a == loopback6})
		}
		for _, lo := range [...]struct{ loopback, any netip.Addr }{
			{loopback4, netip.IPv4Unspecified()},
			{loopback6, netip.IPv6Unspecified()},
		} {
			if !slices.Contains(addrs, lo.loopback) && !slices.Contains(addrs, lo.any) {
				targets = append(targets, target{addr: lo.loopback, nonfatal: true})
			}
		}
	}

	var lns []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, err
	}
	var last error
	for _, t := range targets {
		ln, err := listenOne(t.addr, p)
		if err == nil {
			lns = append(lns, ln)
			continue
		}
		berr := &BindError{Op: "bind", Addr: t.addr, Port: p, Err: syscallErr(err)}
		if se := (*os.SyscallError)(nil); errors.As(err, &se) {
			berr.Op = se.Syscall
		}
		switch {
		case berr.Op == "socket" && isFamilyUnsupported(berr.Err):
			// No such address family here: skipped silently.
			last = berr.Err
		case errors.Is(berr, ErrAddrInUse), berr.Op != "bind", !t.nonfatal:
			return fail(berr)
		default:
			last = berr.Err
			if skipped != nil {
				skipped(berr)
			}
		}
	}
	if len(lns) == 0 {
		return nil, &NoListenerError{Last: last}
	}
	return lns, nil
}

func isFamilyUnsupported(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT)
}

// syscallErr digs the errno out of a *net.OpError / *os.SyscallError.
func syscallErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Strerror renders err as C's strerror does: Go's errno texts are glibc's
// with the first letter lowered, so it is raised again.
func Strerror(err error) string {
	var errno syscall.Errno
	s := err.Error()
	if errors.As(err, &errno) {
		s = errno.Error()
	}
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
