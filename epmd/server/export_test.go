package server

import (
	"net/netip"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// The package's tests check that the owner's state is used on the owner
// goroutine alone.
func init() { checkOwner = true }

// WriteFault is a failure injected into the writes of replies, in either
// backend.
type WriteFault = writeFault

const (
	FaultNone    = faultNone
	FaultError   = faultError
	FaultReset   = faultReset
	FaultAgain   = faultAgain
	FaultPartial = faultPartial
)

// RemotePeer is the address connections claim with NewFaulty's remote.
var RemotePeer = netip.MustParseAddr("192.0.2.7")

// NewFaulty is New with faults injected at the seam: with remote, every
// connection's peer is RemotePeer, which is not local; write, when not
// nil, is asked before each write of reply bytes.
func NewFaulty(cfg Config, remote bool, write func() WriteFault) *Server {
	f := &faults{write: write}
	if remote {
		f.peer = func(netip.Addr) netip.Addr { return RemotePeer }
	}
	s, err := newServer(cfg, f)
	if err != nil {
		panic(err)
	}
	return s
}

// Fill registers n nodes straight into the registry, held by connections
// that do not exist, named by name(i): a large table without n sockets.
func (s *Server) Fill(from, n int, name func(int) string) {
	s.query(func() {
		for i := from; i < from+n; i++ {
			s.o.reg.Register(wire.Node{Name: name(i), Port: uint16(1000 + i%60000), High: 6, Low: 5},
				registry.ConnID(1<<40+i), -1, 0)
		}
	})
}
