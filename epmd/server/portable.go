package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// The portable backend serves sockets through the net package, on every
// system Go runs on: a goroutine per listener accepts, and a goroutine per
// connection reads its request, writes the replies the owner hands it and
// reads a kept socket's next byte or end, posting each outcome to the
// owner as an event. The owner goroutine itself only waits for those
// events and for its timers.
type portable struct {
	s     *Server
	wakeC chan struct{} // buffered 1: post's poke

	// The owner's.
	stopped bool
	lns     []net.Listener

	down atomic.Bool   // stop has begun: goroutines end quietly
	quit chan struct{} // closed by stop

	// mu guards socks, the connections open in this backend, so that
	// stop can close those the owner has not seen yet.
	mu    sync.Mutex
	socks map[*psock]struct{}
}

// psock is one connection of the portable backend.
type psock struct {
	nc   net.Conn
	cmds chan pcmd // the owner's orders, one at a time
	// The owner's.
	c      *conn // its conn, once persisted
	closed bool
}

type pcmd struct {
	b    []byte // write b; nil: read a kept socket's next byte or end
	keep bool
}

func newPortable(s *Server) *portable {
	return &portable{s: s, wakeC: make(chan struct{}, 1), quit: make(chan struct{}),
		socks: make(map[*psock]struct{})}
}

func (p *portable) wake() {
	select {
	case p.wakeC <- struct{}{}:
	default:
	}
}

func (p *portable) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for !p.stopped {
		next := p.s.idle()
		if p.stopped {
			return
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			t.Reset(time.Until(next))
			tc = t.C
		}
		select {
		case <-p.wakeC:
			p.s.drain()
		case <-tc:
		}
	}
}

func (p *portable) exit() {}

func (p *portable) listen(ln net.Listener, failed func(error)) error {
	p.lns = append(p.lns, ln)
	p.s.wg.Add(1)
	go p.accept(ln, failed)
	return nil
}

// accept accepts connections on ln, each served by a goroutine of its own,
// until ln fails for good or stop closes it.
func (p *portable) accept(ln net.Listener, failed func(error)) {
	defer p.s.wg.Done()
	backoff := time.Duration(0)
	for {
		if p.s.cfg.DelayAccept > 0 {
			time.Sleep(p.s.cfg.DelayAccept)
		}
		nc, err := ln.Accept()
		if err != nil {
			if p.down.Load() {
				return
			}
			if isTemporaryAcceptError(err) {
				backoff = nextBackoff(backoff)
				p.s.log.Error("error in accept, backing off", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-p.quit:
					return
				}
				continue
			}
			p.s.post(func() { failed(err) })
			return
		}
		backoff = 0
		ps := &psock{nc: nc, cmds: make(chan pcmd, 2)}
		p.mu.Lock()
		if p.down.Load() {
			p.mu.Unlock()
			nc.Close()
			return
		}
		p.socks[ps] = struct{}{}
		p.s.wg.Add(1)
		p.mu.Unlock()
		go p.serve(ps, time.Now())
	}
}

// serve reads a connection's request and posts it to the owner, then
// carries out the owner's orders until the owner closes the connection.
func (p *portable) serve(ps *psock, accepted time.Time) {
	defer p.s.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.socks, ps)
		p.mu.Unlock()
	}()
	s, nc := p.s, ps.nc
	peer := addrOf(nc.RemoteAddr())
	if f := s.faults; f != nil && f.peer != nil {
		peer = f.peer(peer)
	}
	local := fsm.IsLocal(peer, addrOf(nc.LocalAddr()))
	a := arrival{fd: fdOf(nc), ps: ps, peer: peer, local: local}
	// The packet timeout counts from accept and is never refreshed: a
	// client dribbling bytes cannot extend it.
	nc.SetReadDeadline(accepted.Add(s.cfg.PacketTimeout))
	req, ev := p.readRequest(nc)
	if !s.post(func() { s.arrived(a, req, ev) }) {
		nc.Close()
		return
	}
	for {
		var cmd pcmd
		var ok bool
		select {
		case cmd, ok = <-ps.cmds:
		case <-p.quit:
			nc.Close()
			return
		}
		if !ok {
			return // the owner closed it
		}
		if cmd.keep {
			// Kept socket (registered, or ALIVE2 refused): no timeout;
			// any byte or end ends it. Consume what came, as stock does
			// (INBUF_SIZE), so that the close is orderly.
			nc.SetReadDeadline(time.Time{})
			var b [3060]byte
			n, err := nc.Read(b[:])
			var ev fsm.Event = fsm.Data{}
			if n == 0 {
				ev = fsm.PeerClosed{Err: err}
			}
			s.post(func() {
				if ps.c != nil && !ps.closed {
					s.event(ps.c, ev)
				}
			})
			continue
		}
		err := p.write(nc, cmd.b)
		s.post(func() {
			if ps.c != nil && !ps.closed {
				s.sent(ps.c, err)
			}
		})
	}
}

// write writes a whole reply under the write deadline, unless a fault is
// injected.
func (p *portable) write(nc net.Conn, b []byte) error {
	if f := p.s.faults; f != nil && f.write != nil {
		switch f.write() {
		case faultError:
			return syscall.EPIPE
		case faultReset:
			return syscall.ECONNRESET
		case faultAgain:
			// The socket would block: the goroutine waits, as Write
			// does, and then writes.
			time.Sleep(time.Millisecond)
		case faultPartial:
			if len(b) > 1 {
				nc.SetWriteDeadline(time.Now().Add(p.s.cfg.PacketTimeout))
				if _, err := nc.Write(b[:len(b)/2]); err != nil {
					return err
				}
				time.Sleep(time.Millisecond)
				b = b[len(b)/2:]
			}
		}
	}
	// A client that never reads a large reply must not hold its
	// goroutine and socket forever.
	nc.SetWriteDeadline(time.Now().Add(p.s.cfg.PacketTimeout))
	_, err := nc.Write(b)
	return err
}

// readRequest reads until one frame is complete or the connection fails,
// and returns the request or the event that ended the connection first.
func (p *portable) readRequest(nc net.Conn) (wire.Request, fsm.Event) {
	var fr wire.Framer
	n := 0
	for {
		body, ferr := fr.Advance(n)
		switch {
		case ferr != nil:
			return nil, fsm.Malformed{Err: ferr}
		case body != nil:
			return decodeRequest(body)
		}
		var err error
		n, err = nc.Read(fr.Next())
		if n > 0 {
			continue
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fsm.Timeout{}
			}
			return nil, fsm.PeerClosed{Err: err, Buffered: fr.Buffered()}
		}
	}
}

// send hands the reply to the connection's goroutine: it always finishes
// later.
func (p *portable) send(c *conn, b []byte) (bool, error) {
	c.ps.cmds <- pcmd{b: b}
	return false, nil
}

func (p *portable) keep(c *conn) error {
	c.ps.cmds <- pcmd{keep: true}
	return nil
}

// hold has nothing to do: the connection's goroutine waits for its next
// order.
func (p *portable) hold(*conn) {}

func (p *portable) gone(c *conn) bool { return peekGone(c.ps.nc) }

func (p *portable) close(c *conn, reset bool) {
	ps := c.ps
	if ps.closed {
		return
	}
	ps.closed = true
	if tc, ok := ps.nc.(*net.TCPConn); ok && reset {
		tc.SetLinger(0) // discard what is queued and send a reset
	}
	ps.nc.Close()
	close(ps.cmds)
}

func (p *portable) stop() {
	p.stopped = true
	p.down.Store(true)
	close(p.quit)
	for _, ln := range p.lns {
		ln.Close()
	}
	p.mu.Lock()
	for ps := range p.socks {
		ps.nc.Close()
	}
	p.mu.Unlock()
}
