package fsm_test

import (
	"net/netip"
	"testing"

	"github.com/gopmd/gopmd/fsm"
)

func TestIsLocal(t *testing.T) {
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	tests := []struct {
		peer, local string
		want        bool
	}{
		// Loopback, whatever the local address.
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "10.0.0.2", true},
		{"127.9.9.9", "127.0.0.1", true},
		{"127.255.255.255", "", true},
		{"::1", "::1", true},
		{"::1", "2001:db8::2", true},
		{"::ffff:127.0.0.1", "::ffff:127.0.0.1", true},
		{"::ffff:127.0.0.1", "::", true},
		{"::ffff:127.1.2.3", "10.0.0.2", true},

		// Not loopback: local only when the host talks to itself.
		{"10.0.0.1", "10.0.0.2", false},
		{"10.0.0.2", "10.0.0.2", true},
		{"192.168.1.7", "192.168.1.7", true},
		{"2001:db8::1", "2001:db8::2", false},
		{"2001:db8::2", "2001:db8::2", true},
		{"::ffff:10.0.0.1", "::ffff:10.0.0.2", false},
		{"::ffff:10.0.0.2", "::ffff:10.0.0.2", true},
		{"::ffff:10.0.0.2", "10.0.0.2", true},
		{"128.0.0.1", "10.0.0.2", false},
		{"126.255.255.255", "10.0.0.2", false},
		{"::2", "10.0.0.2", false},
		{"::", "::1", false},
		{"0.0.0.0", "10.0.0.2", false},

		// Invalid addresses.
		{"", "", false},
		{"", "127.0.0.1", false},
		{"10.0.0.1", "", false},

		// Zones are ignored.
		{"fe80::1%eth0", "fe80::1%eth1", true},
		{"fe80::1%eth0", "fe80::1", true},
		{"fe80::1", "fe80::1%2", true},
		{"fe80::1%eth0", "fe80::2%eth0", false},
		{"::1%lo", "2001:db8::2", true},
		{"::1%1", "", true},
	}
	for _, tt := range tests {
		if got := fsm.IsLocal(addr(tt.peer), addr(tt.local)); got != tt.want {
			t.Errorf("IsLocal(%q, %q) = %v, want %v", tt.peer, tt.local, got, tt.want)
		}
	}
}
