package server

import "net/netip"

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
