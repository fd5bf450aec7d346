package fsm

import "net/netip"

// IsLocal reports whether a peer counts as local, the rule stock epmd
// applies once per connection at accept (conn_local_peer_check): the IPv6
// loopback ::1, any IPv4 address in 127.0.0.0/8, or a peer whose address
// equals the connection's own local address (the host talking to itself
// through a non-loopback address). An invalid peer address is not local.
//
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, as an IPv4 client appears on
// a dual-stack socket) are judged as the IPv4 address they carry.
func IsLocal(peer, local netip.Addr) bool {
	// Zones are ignored: the same link-local address on the same host is
	// the host itself, and ::1 is loopback whatever zone it carries.
	peer, local = peer.Unmap().WithZone(""), local.Unmap().WithZone("")
	switch {
	case !peer.IsValid():
		return false
	case peer.Is4():
		if peer.As4()[0] == 127 {
			return true
		}
	case peer == netip.IPv6Loopback():
		return true
	}
	return peer == local
}
