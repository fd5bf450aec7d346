package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// The accept loop serves most requests without a goroutine. Clients of epmd
// send their request the moment they connect, and all but ALIVE2 are
// answered and closed at once; so when the first non-blocking read of a
// new connection already holds a whole one-shot request, the accept loop
// answers it with plain system calls (read, write, close) and the
// connection never meets the runtime's network poller, a goroutine or a
// timer. That is what makes a look-up as cheap as in the C daemon.
//
// Anything else (a request still on its way, an ALIVE2 whose socket stays
// open, a reply too big for the socket buffer) moves to the ordinary path:
// the descriptor becomes a net.Conn served by its own goroutine, carrying
// the bytes already read.

// serveRaw is Serve for a listener with a raw descriptor. Go lets a
// listener's descriptor be used only inside Control, not waited on, so
// the loop waits with poll(2) itself, on the listener and on the server's
// stop eventfd; the descriptor cannot be closed under it meanwhile.
func (s *Server) serveRaw(ln net.Listener, raw syscall.RawConn) error {
	var loopErr error
	err := raw.Control(func(lfd uintptr) {
		backoff := time.Duration(0)
		fds := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}, {Fd: int32(s.stopFd), Events: unix.POLLIN}}
		for !s.isStopping() {
			if s.cfg.DelayAccept > 0 {
				time.Sleep(s.cfg.DelayAccept)
			}
			nfd, sa, err := syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch {
			case err == nil:
				backoff = 0
				s.accepted(nfd, sa)
			case errors.Is(err, syscall.EAGAIN):
				if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, syscall.EINTR) {
					loopErr = err
					return
				}
			case isTemporaryAcceptError(err):
				backoff = nextBackoff(backoff)
				s.log.Error("error in accept, backing off", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
			default:
				loopErr = err
				return
			}
		}
	})
	if err == nil {
		err = loopErr
	}
	if err != nil && !s.isStopping() {
		s.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
		return err
	}
	return nil
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minAcceptBackoff
	}
	return min(2*d, maxAcceptBackoff)
}

// rawConn is a new connection served with plain system calls until its
// request is complete.
type rawConn struct {
	fd       int
	peer     netip.Addr
	local    bool
	accepted time.Time
	fr       wire.Framer
}

func (rc *rawConn) deadline(timeout time.Duration) time.Time { return rc.accepted.Add(timeout) }

// accepted serves a new connection from the accept loop if its request is
// already complete and one-shot; a request still on its way waits in the
// poller, and an ALIVE2 goes to its own goroutine.
func (s *Server) accepted(nfd int, sa syscall.Sockaddr) {
	rc := &rawConn{fd: nfd, peer: sockaddrAddr(sa), accepted: time.Now()}
	rc.local = fsm.IsLocal(rc.peer, netip.Addr{}) // loopback needs no second look
	if !rc.local {
		if lsa, err := syscall.Getsockname(nfd); err == nil {
			rc.local = fsm.IsLocal(rc.peer, sockaddrAddr(lsa))
		}
	}
	if s.advance(rc) && (s.poller == nil || !s.poller.await(rc)) {
		s.handOff(rc)
	}
}

// advance reads what the socket holds and, once the request is complete
// (or the connection failed), serves it: one-shot requests here, an ALIVE2
// through handOff. It reports whether the connection must wait for more.
func (s *Server) advance(rc *rawConn) (waiting bool) {
	n, rerr := syscall.Read(rc.fd, rc.fr.Next())
	var ev fsm.Event
	switch {
	case n > 0:
		body, ferr := rc.fr.Advance(n)
		switch {
		case ferr != nil:
			ev = fsm.Malformed{Err: ferr}
		case body == nil:
			return true
		default:
			req, derr := wire.DecodeRequest(body)
			switch {
			case derr != nil:
				ev = fsm.Malformed{Err: derr}
			case !fsm.OneShot(req):
				s.handOff(rc)
				return false
			default:
				ev = fsm.Received{Req: req, Now: s.cfg.Now().Unix()}
			}
		}
	case n == 0 && rerr == nil:
		ev = fsm.PeerClosed{Buffered: rc.fr.Buffered()}
	case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EINTR):
		return true
	default:
		ev = fsm.PeerClosed{Err: rerr, Buffered: rc.fr.Buffered()}
	}
	s.serveOneShot(rc, ev)
	return false
}

// serveOneShot steps a connection that will close with ev and carries out
// the actions with plain system calls.
func (s *Server) serveOneShot(rc *rawConn, ev fsm.Event) {
	nfd := rc.fd
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		syscall.Close(nfd)
		return
	}
	s.nextID++
	m := fsm.New(fsm.Config{ID: s.nextID, Fd: nfd, Local: rc.local, Relaxed: s.cfg.Relaxed, Port: s.cfg.Port})
	s.mu.Unlock()
	if s.log.Enabled(context.Background(), LevelConn) {
		s.log.Log(context.Background(), LevelConn, "connection opened",
			"conn", uint64(m.Config().ID), "fd", nfd, "peer", rc.peer.String(), "local", rc.local)
	}

	// The connection is never in s.conns: nothing can refer to it, as it
	// will never hold a registration.
	c := &conn{m: m}
	acts := s.step(c, ev)
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.Send:
			b, err := a.Resp.AppendBinary(nil)
			if err == nil {
				if s.cfg.DelayWrite > 0 {
					time.Sleep(s.cfg.DelayWrite)
				}
				var w int
				w, err = syscall.Write(nfd, b)
				if err == nil && w < len(b) || errors.Is(err, syscall.EAGAIN) {
					// The socket buffer is full: finish the reply on
					// the ordinary path, with its write deadline.
					s.finishWrite(nfd, b[max(w, 0):], m.Config().ID, acts[i+1:])
					return
				}
			}
			if err != nil {
				if more := s.step(c, fsm.WriteFailed{Err: err}); len(more) > 0 {
					acts, i = more, -1
				}
			}
		case fsm.Close:
			syscall.Close(nfd)
			s.logClose(m.Config().ID, a)
		case fsm.Shutdown:
			// Not here: closing the listener waits for this accept
			// loop to leave it.
			defer func() { go s.beginShutdown(killMessage) }()
		}
	}
}

// handOff moves a connection to the ordinary path: a net.Conn and its own
// goroutine, which goes on from the bytes already read.
func (s *Server) handOff(rc *rawConn) {
	f := os.NewFile(uintptr(rc.fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Error("cannot serve connection", "err", err)
		return
	}
	s.startConn(nc, &rc.fr, rc.accepted)
}

// finishWrite writes the rest of a reply that did not fit in the socket
// buffer, in its own goroutine and under the write deadline, then carries
// out the actions that followed the Send (a Close, maybe a Shutdown).
func (s *Server) finishWrite(nfd int, rest []byte, id registry.ConnID, after []fsm.Action) {
	f := os.NewFile(uintptr(nfd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Error("cannot finish reply", "err", err)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		nc.SetWriteDeadline(time.Now().Add(s.cfg.PacketTimeout))
		_, err := nc.Write(rest)
		if tc, ok := nc.(*net.TCPConn); ok && err != nil {
			tc.SetLinger(0)
		}
		nc.Close()
		for _, a := range after {
			switch a := a.(type) {
			case fsm.Close:
				s.logClose(id, a)
			case fsm.Shutdown:
				s.beginShutdown(killMessage)
			}
		}
	}()
}

func sockaddrAddr(sa syscall.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr)
	}
	return netip.Addr{}
}
