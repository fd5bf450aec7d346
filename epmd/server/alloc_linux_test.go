package server

import (
	"context"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/wire"
)

// lookupOnce serves one PORT_PLEASE2 of name the way the event loop serves
// a connection whose request arrived whole (accepted, then read, stepped,
// answered and closed), over a socket pair, and returns the reply.
func lookupOnce(t testing.TB, l *epollBackend, frame []byte, reply []byte) []byte {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRaw(fds[1])
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	if n, err := writeRaw(fds[1], frame); err != nil || n != len(frame) {
		t.Fatalf("write: %d, %v", n, err)
	}
	l.accepted(fds[0], netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	n, err := readRaw(fds[1], reply[:cap(reply)])
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return reply[:n]
}

// lookupServer starts a server on the epoll backend with no listener and
// the node "held" registered, and returns it, its backend and the node.
// The loop's methods are called on the owner goroutine, through query.
func lookupServer(tb testing.TB) (*Server, *epollBackend, wire.Node) {
	s := New(Config{Port: 4369, Backend: BackendEpoll})
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	node := wire.Node{Name: "held", Port: 4242, Type: 77, High: 6, Low: 5}
	s.query(func() { s.o.reg.Register(node, 1, 9, 1000) })
	return s, s.be.(*epollBackend), node
}

// TestLookupAllocatesOnlyItsReply pins the look-up path's allocations: a
// PORT_PLEASE2 served by the event loop allocates its reply's bytes and
// nothing else (no request, event, state machine or action values), found
// or not. The look-ups run on the owner goroutine, as the loop's do, with
// the ownership checks on.
func TestLookupAllocatesOnlyItsReply(t *testing.T) {
	s, l, node := lookupServer(t)

	found, _ := wire.EncodeRequest(&wire.PortPlease2Req{Name: "held"})
	absent, _ := wire.EncodeRequest(&wire.PortPlease2Req{Name: "absent"})
	want, _ := (&wire.Port2Resp{Node: node}).AppendBinary(nil)
	var buf [64]byte
	var got1, got2 []byte
	s.query(func() {
		got1 = append(got1, lookupOnce(t, l, found, buf[:0])...)
		got2 = append(got2, lookupOnce(t, l, absent, buf[:0])...)
	})
	if string(got1) != string(want) {
		t.Fatalf("reply %x, want %x", got1, want)
	}
	if string(got2) != "w\x01" {
		t.Fatalf("reply %x, want 7701", got2)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{{"found", found}, {"absent", absent}} {
		var allocs float64
		s.query(func() {
			allocs = testing.AllocsPerRun(200, func() { lookupOnce(t, l, tc.frame, buf[:0]) })
		})
		if allocs > 1 {
			t.Errorf("look-up, %s: %.1f allocations, want 1 (the reply's bytes)", tc.name, allocs)
		}
	}
}

// BenchmarkLookupPath is one look-up through the event loop's path, over
// a socket pair: accept (the socket is given), read, decode, step, encode,
// write, close, plus the client side's socketpair, write and read.
func BenchmarkLookupPath(b *testing.B) {
	s, l, _ := lookupServer(b)
	frame, _ := wire.EncodeRequest(&wire.PortPlease2Req{Name: "held"})
	var buf [64]byte
	b.ReportAllocs()
	s.query(func() {
		// Without the tests' ownership checks, as in production (each
		// reads the goroutine's stack header).
		defer func(on bool) { checkOwner = on }(checkOwner)
		checkOwner = false
		for b.Loop() {
			lookupOnce(b, l, frame, buf[:0])
		}
	})
}
