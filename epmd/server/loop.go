package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"

	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// The event loop serves every socket that comes from a real listener, with
// plain system calls, from one goroutine waiting in one epoll set, much as
// stock epmd serves all its sockets from one select() loop:
//
//   - the listening sockets (level-triggered; accept4 until EAGAIN, a
//     batch at a time);
//   - pending connections, whose request has not fully arrived: each new
//     connection is read once, after the other events of the round that
//     accepted it, and only if its request is not complete then does it
//     join the set, until its packet deadline;
//   - kept sockets, open after an ALIVE2 reply (registered nodes, and
//     refused registrations, which stock also keeps), until a byte, end
//     of stream or an error ends them.
//
// No connection meets the runtime's network poller, a goroutine or a
// timer, and requests never move between threads: a look-up is an accept,
// a read, a write and a close, plus an epoll_ctl when the request had not
// arrived at accept. Two things leave the loop, because they may wait: a
// reply too big for the socket buffer (finishWrite) and an ALIVE2 that must
// wait for the holder of its name to go away (probeLater). Both run in
// their own goroutines.
//
// Ownership. A pending or one-shot connection belongs to the loop alone. A
// kept socket belongs to the server: it is in s.conns, every system call
// on it is made under s.mu, and it is closed by whoever removes it from
// s.conns, under s.mu; so a descriptor number is never used after its
// close, whichever goroutine closed it. Epoll events carry keys, never
// descriptor numbers: a kept socket's key is its ConnID.

// Epoll keys: the wake eventfd is 0, kept sockets their ConnID (from 1,
// far below the flag bits), pending connections and listeners a sequence
// number with a flag bit.
const (
	keyWake    = 0
	keyPending = 1 << 63
	keyListen  = 1 << 62
)

// yieldEvery is how often the loop passes through the scheduler, well
// within the runtime's 10 ms preemption limit.
const yieldEvery = 5 * time.Millisecond

// acceptBatch bounds the accepts made per listener event, so that a flood
// of connections cannot starve the pending ones of their turn.
const acceptBatch = 64

// evloop is the event loop.
type evloop struct {
	s    *Server
	epfd int
	wake int // eventfd: poked to make the loop look at stopped

	// The loop goroutine's own.
	pending  map[uint64]*rawConn
	queue    []uint64 // pending keys in accept order; stale keys are skipped
	seq      uint64
	free     []*rawConn
	disarmed []*listenSock // listeners backing off after a failed accept
	machine  *fsm.Conn     // the one-shot connections' state machine, Reset for each
	p2       wire.PortPlease2Req
	names    map[string]string // names decode has seen
	batch    []acceptedConn

	mu      sync.Mutex // guards lns, lnSeq and stopped
	lns     map[uint64]*listenSock
	lnSeq   uint64
	stopped bool

	stopOnce sync.Once
	quit     chan struct{} // closed by stop
	done     chan struct{} // closed when the loop has exited and closed its descriptors
}

// listenSock is a listening socket the loop accepts on: a duplicate of a
// listener's descriptor, so that the listener itself can be closed and no
// longer wakes the runtime's poller for every connection.
type listenSock struct {
	fd      int
	key     uint64
	addr    net.Addr
	failed  chan error // receives the error that ends this listener
	backoff time.Duration
	retryAt time.Time // when a disarmed listener is armed again
}

type acceptedConn struct {
	fd   int
	peer netip.Addr
}

// rawConn is a new connection served with plain system calls until its
// request is complete.
type rawConn struct {
	fd       int
	peer     netip.Addr
	local    bool
	accepted time.Time
	key      uint64 // its pending key, once it waits in the epoll set
	fr       wire.Framer
}

func (rc *rawConn) deadline(timeout time.Duration) time.Time { return rc.accepted.Add(timeout) }

func newLoop(s *Server) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &evloop{
		s: s, epfd: epfd, wake: wake,
		pending: make(map[uint64]*rawConn),
		machine: fsm.New(fsm.Config{}),
		names:   make(map[string]string),
		lns:     make(map[uint64]*listenSock),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, wake, keyWake, unix.EPOLLIN); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	go l.run()
	return l, nil
}

func (l *evloop) ctl(op, fd int, key uint64, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	return epollCtlRaw(l.epfd, op, fd, &ev)
}

// Events watched: readable, or the peer's end (FIN) even when a half-close
// leaves nothing to read.
const watchIn = unix.EPOLLIN | unix.EPOLLRDHUP

// addListener makes the loop accept on fd, a duplicate it takes over. The
// returned channel receives the error that ends the listener for good.
func (l *evloop) addListener(fd int, addr net.Addr) (<-chan error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil, net.ErrClosed
	}
	l.lnSeq++
	ls := &listenSock{fd: fd, key: keyListen | l.lnSeq, addr: addr, failed: make(chan error, 1)}
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, ls.key, unix.EPOLLIN); err != nil {
		return nil, err
	}
	l.lns[ls.key] = ls
	return ls.failed, nil
}

func (l *evloop) poke() {
	one := [8]byte{1}
	unix.Write(l.wake, one[:])
}

// stop ends the loop and waits until it has closed its descriptors: the
// listeners' duplicates, the pending connections, the epoll set.
func (l *evloop) stop() {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		l.poke()
		close(l.quit)
	})
	<-l.done
}

func (l *evloop) run() {
	defer l.exit()
	events := make([]unix.EpollEvent, 256)
	lastYield := time.Now()
	for {
		// A goroutine that runs for 10 ms without passing through the
		// scheduler (a run of system calls does not) is taken for a
		// runaway by the runtime's monitor: it preempts it with a
		// signal, hands its processor to another thread, and then polls
		// every 20 µs for a while, costing a context switch each time.
		// Yielding now and then, far more cheaply, keeps it calm.
		if now := time.Now(); now.Sub(lastYield) > yieldEvery {
			runtime.Gosched()
			lastYield = now
		}
		n, err := unix.EpollWait(l.epfd, events, l.timers())
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.s.log.Error("epoll_wait failed; the daemon stops serving", "err", err)
			go l.s.beginShutdown("event loop failed")
			// Keep the descriptors open until the shutdown stops the
			// loop: it pokes the wake eventfd, and until it has taken
			// the kept sockets out of s.conns, a probe may still call
			// epoll_ctl on the set. Closed now, their numbers could
			// already belong to other descriptors.
			<-l.quit
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			switch {
			case key == keyWake:
				var b [8]byte
				unix.Read(l.wake, b[:])
				l.mu.Lock()
				stopped := l.stopped
				l.mu.Unlock()
				if stopped {
					return
				}
			case key&keyPending != 0:
				l.pendingReady(key)
			case key&keyListen != 0:
				l.acceptOn(key)
			default:
				l.s.keptReady(registry.ConnID(key))
			}
		}
		l.serveAccepted()
	}
}

func (l *evloop) exit() {
	for _, rc := range l.pending {
		closeRaw(rc.fd)
	}
	for _, a := range l.batch {
		closeRaw(a.fd) // accepted in the round the loop stopped in
	}
	l.pending = nil
	l.mu.Lock()
	l.stopped = true
	for _, ls := range l.lns {
		unix.Close(ls.fd)
	}
	l.lns = nil
	l.mu.Unlock()
	unix.Close(l.epfd)
	unix.Close(l.wake)
	close(l.done)
}

// timers times out the pending connections whose packet deadline passed,
// arms again the listeners whose back-off is over, and returns how long
// epoll_wait may sleep, in milliseconds (-1: until an event).
func (l *evloop) timers() int {
	if len(l.queue) == 0 && len(l.disarmed) == 0 {
		return -1
	}
	now := time.Now()
	var next time.Time
	for len(l.queue) > 0 {
		key := l.queue[0]
		rc := l.pending[key]
		if rc == nil {
			l.queue = l.queue[1:] // already served
			continue
		}
		if d := rc.deadline(l.s.cfg.PacketTimeout); d.After(now) {
			next = d
			break
		}
		l.queue = l.queue[1:]
		delete(l.pending, key)
		l.s.serveOneShot(rc, fsm.Timeout{}, nil)
		l.put(rc)
	}
	if len(l.queue) == 0 {
		l.queue = nil // let a long queue's array go
	}
	armed := l.disarmed[:0]
	for _, ls := range l.disarmed {
		l.mu.Lock()
		dropped := l.lns[ls.key] != ls
		l.mu.Unlock()
		if dropped {
			// It failed for good meanwhile (a hang-up is reported even
			// while disarmed): its descriptor is closed, and its number
			// may be another socket's by now.
			continue
		}
		if !ls.retryAt.After(now) {
			if err := l.ctl(unix.EPOLL_CTL_MOD, ls.fd, ls.key, unix.EPOLLIN); err != nil {
				l.dropListener(ls, err)
			}
			continue
		}
		armed = append(armed, ls)
		if next.IsZero() || ls.retryAt.Before(next) {
			next = ls.retryAt
		}
	}
	l.disarmed = armed
	if next.IsZero() {
		return -1
	}
	// epoll_wait takes an int of milliseconds: a packet timeout of weeks
	// is waited for in steps.
	return int(min(next.Sub(now)/time.Millisecond+1, 1<<30))
}

// acceptOn accepts what a listener has, a batch at a time; the round's
// other events are handled before the batch is served (serveAccepted).
func (l *evloop) acceptOn(key uint64) {
	l.mu.Lock()
	ls := l.lns[key]
	l.mu.Unlock()
	if ls == nil {
		return
	}
	if l.s.cfg.DelayAccept > 0 {
		// -delay_accept, a debugging aid that simulates a busy daemon:
		// like stock epmd's, it holds up everything, once per wake-up.
		time.Sleep(l.s.cfg.DelayAccept)
	}
	for range acceptBatch {
		nfd, peer, err := acceptRaw(ls.fd)
		switch {
		case err == nil:
			ls.backoff = 0
			l.batch = append(l.batch, acceptedConn{nfd, peer})
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.ECONNABORTED) || errors.Is(err, unix.EINTR):
			// The client gave up before we accepted it; go on.
		case isTemporaryAcceptError(err):
			// Out of descriptors or memory: stock epmd exits here. Stop
			// accepting on this listener for a while; everything else
			// goes on being served.
			ls.backoff = nextBackoff(ls.backoff)
			l.s.log.Error("error in accept, backing off", "err", err, "backoff", ls.backoff)
			if err := l.ctl(unix.EPOLL_CTL_MOD, ls.fd, ls.key, 0); err != nil {
				l.dropListener(ls, err)
				return
			}
			ls.retryAt = time.Now().Add(ls.backoff)
			l.disarmed = append(l.disarmed, ls)
			return
		default:
			l.dropListener(ls, err)
			return
		}
	}
}

// serveAccepted serves the connections accepted in this round, after
// every other event of the round: the later a new connection is first
// read, the likelier its request is there already, and a connection
// served at once costs no epoll_ctl and no second read.
func (l *evloop) serveAccepted() {
	for i, a := range l.batch {
		l.accepted(a.fd, a.peer)
		l.batch[i] = acceptedConn{}
	}
	l.batch = l.batch[:0]
}

// dropListener stops accepting on a listener that failed for good, and
// tells its Serve.
func (l *evloop) dropListener(ls *listenSock, err error) {
	l.mu.Lock()
	if l.lns[ls.key] == ls {
		delete(l.lns, ls.key)
		// The socket may stay open elsewhere (systemd keeps the
		// sockets it passes), and epoll forgets a descriptor only with
		// the last one of its file: leave the set before closing.
		l.ctl(unix.EPOLL_CTL_DEL, ls.fd, 0, 0)
		unix.Close(ls.fd)
	}
	l.mu.Unlock()
	ls.failed <- err
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minAcceptBackoff
	}
	return min(2*d, maxAcceptBackoff)
}

func (l *evloop) get() *rawConn {
	if n := len(l.free); n > 0 {
		rc := l.free[n-1]
		l.free = l.free[:n-1]
		return rc
	}
	return new(rawConn)
}

// put recycles a rawConn (and its 3 KiB framing buffer) once its
// connection is served, closed or handed on.
func (l *evloop) put(rc *rawConn) {
	if len(l.free) >= 64 {
		return
	}
	rc.fr.Reset()
	rc.key = 0
	l.free = append(l.free, rc)
}

// accepted serves a new connection at once if its request is already
// complete; otherwise it waits in the epoll set.
func (l *evloop) accepted(nfd int, peer netip.Addr) {
	rc := l.get()
	rc.fd, rc.peer, rc.accepted = nfd, peer, time.Now()
	rc.local = fsm.IsLocal(rc.peer, netip.Addr{}) // loopback needs no second look
	if !rc.local {
		rc.local = fsm.IsLocal(rc.peer, localAddrRaw(nfd))
	}
	if !l.advance(rc) {
		l.put(rc)
		return
	}
	l.seq++
	rc.key = keyPending | l.seq
	if err := l.ctl(unix.EPOLL_CTL_ADD, rc.fd, rc.key, watchIn); err != nil {
		// Out of kernel memory: the connection cannot wait.
		l.s.serveOneShot(rc, fsm.PeerClosed{Err: err}, nil)
		l.put(rc)
		return
	}
	l.pending[rc.key] = rc
	l.queue = append(l.queue, rc.key)
}

// pendingReady goes on with a pending connection that has bytes, or its
// end.
func (l *evloop) pendingReady(key uint64) {
	rc := l.pending[key]
	if rc == nil || l.advance(rc) {
		return // still waiting: level-triggered, the next bytes wake it
	}
	delete(l.pending, key)
	l.put(rc)
}

// advance reads what the socket holds and, once the request is complete or
// the connection failed, serves it. It reports whether the connection must
// wait for more.
func (l *evloop) advance(rc *rawConn) (waiting bool) {
	s := l.s
	n, rerr := readRaw(rc.fd, rc.fr.Next())
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
			req, derr := l.decode(body)
			switch {
			case derr != nil:
				ev = fsm.Malformed{Err: derr}
			case !fsm.OneShot(req):
				s.serveKept(rc, fsm.Received{Req: req, Now: s.cfg.Now().Unix()})
				return false
			default:
				s.serveOneShot(rc, nil, req)
				return false
			}
		}
	case n == 0 && rerr == nil:
		ev = fsm.PeerClosed{Buffered: rc.fr.Buffered()}
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR):
		return true
	default:
		ev = fsm.PeerClosed{Err: rerr, Buffered: rc.fr.Buffered()}
	}
	s.serveOneShot(rc, ev, nil)
	return false
}

// maxInterned bounds the names decode keeps.
const maxInterned = 1024

// decode decodes a request. A PORT_PLEASE2 is decoded into the loop's own
// value, valid until the next decode, with a name the loop has seen
// before when it can: a look-up of a known name allocates nothing.
func (l *evloop) decode(body []byte) (wire.Request, error) {
	if len(body) == 0 || wire.Tag(body[0]) != wire.TagPortPlease2Req {
		return wire.DecodeRequest(body)
	}
	b, err := wire.PortPlease2Name(body)
	if err != nil {
		return nil, err
	}
	name, ok := l.names[string(b)]
	if !ok {
		if len(l.names) >= maxInterned {
			clear(l.names)
		}
		name = string(b)
		l.names[name] = name
	}
	l.p2 = wire.PortPlease2Req{Name: name}
	return &l.p2, nil
}

// serveOneShot steps a connection that will close with ev, or with the
// complete request req if it is not nil, and carries out the actions with
// plain system calls. The connection is never in s.conns: nothing can
// refer to it, as it will never hold a registration. Its state machine is
// the loop's own, Reset for each connection (only the loop calls this),
// so that a look-up allocates nothing but its reply.
func (s *Server) serveOneShot(rc *rawConn, ev fsm.Event, req wire.Request) {
	nfd := rc.fd
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		closeRaw(nfd)
		return
	}
	s.nextID++
	m := s.loop.machine
	m.Reset(fsm.Config{ID: s.nextID, Fd: nfd, Local: rc.local, Relaxed: s.cfg.Relaxed, Port: s.cfg.Port})
	c := &conn{fd: nfd, m: m}
	s.logOpened(c, rc.peer)
	var acts []fsm.Action
	if req != nil {
		acts = s.stepRequestLocked(c, req)
	} else {
		acts = s.stepLocked(c, ev)
	}
	s.afterStepLocked(c, acts)
	s.mu.Unlock()

	id := c.m.Config().ID
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.Send:
			b, w, err := s.sendReply(nfd, a.Resp)
			if b != nil && (err == nil && w < len(b) || errors.Is(err, unix.EAGAIN)) {
				// The socket buffer is full: finish the reply in a
				// goroutine, under the write deadline. It works on a
				// duplicate of the descriptor, and epoll drops a
				// descriptor only with the last one of its file: a
				// pending connection leaves the set first, or its
				// registration would stay, level-triggered, and wake
				// the loop for nothing until the reply is finished.
				if rc.key != 0 {
					s.loop.ctl(unix.EPOLL_CTL_DEL, nfd, 0, 0)
				}
				// The machine's actions are its own until its next
				// Reset: the goroutine gets a copy.
				s.finishWrite(nfd, b[max(w, 0):], id, slices.Clone(acts[i+1:]))
				return
			}
			if err != nil {
				c.writeFailed = true
				if more := s.step(c, fsm.WriteFailed{Err: err}); len(more) > 0 {
					acts, i = more, -1
				}
			}
		case fsm.Close:
			c.closeSocket()
			s.logClose(id, a)
		case fsm.Shutdown:
			// Not from the loop: shutting down waits for it to exit.
			defer func() { go s.beginShutdown(killMessage) }()
		}
	}
}

// serveKept serves a complete ALIVE2 from the loop. The connection joins
// s.conns and, unless the machine closes it, the epoll set as a kept
// socket. If the name is held by a socket that has not shown its end yet,
// the wait for it (the probe grace) happens in a goroutine of its own.
func (s *Server) serveKept(rc *rawConn, ev fsm.Event) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		closeRaw(rc.fd)
		return
	}
	c := &conn{fd: rc.fd, key: rc.key, m: s.newMachine(rc.fd, rc.local)}
	s.conns[c.m.Config().ID] = c
	s.logOpened(c, rc.peer)
	acts := s.stepLocked(c, ev)
	if p, ok := probeOf(acts); ok {
		holder := s.conns[p.ID]
		gone := holder == nil || holder.gone()
		if !gone && s.cfg.ProbeGrace > 0 {
			if c.key != 0 {
				// It waited in the epoll set as a pending connection:
				// no event of it may wake the loop during the grace
				// (its pending key is gone), so it leaves the set, and
				// joins it again as a kept socket afterwards.
				s.loop.ctl(unix.EPOLL_CTL_DEL, c.fd, 0, 0)
				c.key = 0
			}
			s.wg.Add(1)
			s.mu.Unlock()
			go s.probeLater(c, p.ID)
			return
		}
		acts = s.stepLocked(c, fsm.OwnerProbed{Gone: gone})
	}
	shutdown := s.keptActsLocked(c, acts)
	s.mu.Unlock()
	if shutdown {
		go s.beginShutdown(killMessage)
	}
}

// sendReply encodes a reply and writes it with one write(2), after the
// -delay_write sleep. b is nil if the reply could not be encoded.
func (s *Server) sendReply(fd int, r wire.Response) (b []byte, w int, err error) {
	b, err = s.encode(r)
	if err != nil {
		return nil, 0, err
	}
	if s.cfg.DelayWrite > 0 {
		time.Sleep(s.cfg.DelayWrite)
	}
	w, err = writeRaw(fd, b)
	return b, w, err
}

// probeLater waits, outside the loop, for the holder of a name to show its
// end (see awaitGone), then finishes the ALIVE2 that asked for the name.
func (s *Server) probeLater(c *conn, holder registry.ConnID) {
	defer s.wg.Done()
	gone := s.awaitGone(holder)
	s.mu.Lock()
	if s.conns[c.m.Config().ID] != c {
		s.mu.Unlock() // closed meanwhile, by a shutdown
		return
	}
	shutdown := s.keptActsLocked(c, s.stepLocked(c, fsm.OwnerProbed{Gone: gone}))
	s.mu.Unlock()
	if shutdown {
		go s.beginShutdown(killMessage)
	}
}

func probeOf(acts []fsm.Action) (fsm.ProbeOwner, bool) {
	if len(acts) == 1 {
		p, ok := acts[0].(fsm.ProbeOwner)
		return p, ok
	}
	return fsm.ProbeOwner{}, false
}

// keptActsLocked carries out, under s.mu, the actions of a step of a
// connection that is in s.conns with a raw socket: the ALIVE2 exchange, or
// the end of a kept socket. A connection still open afterwards joins the
// epoll set as a kept socket. It reports whether the daemon must shut down.
func (s *Server) keptActsLocked(c *conn, acts []fsm.Action) (shutdown bool) {
	s.afterStepLocked(c, acts)
	id := c.m.Config().ID
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.Send:
			// An ALIVE2 reply is at most 20 bytes on a socket that has
			// sent nothing yet: it always fits, so a short write means
			// the connection is failing.
			b, w, err := s.sendReply(c.fd, a.Resp)
			if err == nil && w < len(b) {
				err = unix.EAGAIN
			}
			if err != nil {
				c.writeFailed = true
				if more := s.stepLocked(c, fsm.WriteFailed{Err: err}); len(more) > 0 {
					s.afterStepLocked(c, more)
					acts, i = more, -1
				}
			}
		case fsm.Close:
			s.forgetLocked(id)
			c.closeSocket()
			s.logClose(id, a)
			return shutdown
		case fsm.Shutdown:
			shutdown = true
		}
	}
	if c.watched {
		return shutdown
	}
	op := unix.EPOLL_CTL_ADD
	if c.key != 0 {
		op = unix.EPOLL_CTL_MOD // it waited there as a pending connection
	}
	if err := s.loop.ctl(op, c.fd, uint64(id), watchIn); err != nil {
		// Out of kernel memory: a registration nobody watches would
		// outlive its node, so end it now.
		s.log.Error("cannot watch a registered connection", "conn", uint64(id), "err", err)
		return s.keptActsLocked(c, s.stepLocked(c, fsm.PeerClosed{Err: err})) || shutdown
	}
	c.watched = true
	return shutdown
}

// keptReady handles a kept socket that has something to say: a byte (any
// byte ends a registration), end of stream, or an error. Like stock epmd
// it reads what came (up to its whole buffer, INBUF_SIZE = 3060 bytes)
// before it closes the socket, so that the client sees an orderly end
// rather than the reset a close with unread bytes would send.
func (s *Server) keptReady(id registry.ConnID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[id]
	if c == nil {
		return // closed meanwhile; epoll dropped it with the close
	}
	var ev fsm.Event
	switch n, err := peekRaw(c.fd); {
	case errors.Is(err, unix.EAGAIN):
		return // nothing after all
	case err != nil:
		ev = fsm.PeerClosed{Err: err}
	case n == 0:
		ev = fsm.PeerClosed{}
	default:
		ev = fsm.Data{}
		var b [3060]byte
		readRaw(c.fd, b[:])
	}
	if shutdown := s.keptActsLocked(c, s.stepLocked(c, ev)); shutdown {
		go s.beginShutdown(killMessage)
	}
}

// finishWrite writes the rest of a reply that did not fit in the socket
// buffer, in its own goroutine and under the write deadline, then carries
// out the actions that followed the Send (a Close, maybe a Shutdown).
func (s *Server) finishWrite(nfd int, rest []byte, id registry.ConnID, after []fsm.Action) {
	f := os.NewFile(uintptr(nfd), "")
	nc, err := net.FileConn(f)
	if err != nil {
		// Out of descriptors, say: the reply cannot be finished. A
		// reset, not a close, so that the client does not take what it
		// got for the whole reply.
		s.log.Error("cannot finish reply", "err", err)
		unix.SetsockoptLinger(nfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	f.Close()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if nc != nil {
			nc.SetWriteDeadline(time.Now().Add(s.cfg.PacketTimeout))
			_, err := nc.Write(rest)
			if tc, ok := nc.(*net.TCPConn); ok && err != nil {
				tc.SetLinger(0)
			}
			nc.Close()
		}
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

// serveLoop is Serve for a listener with a descriptor: the loop accepts on
// a duplicate of it, and the listener itself is closed at once, so that
// the runtime's poller stops watching it (it would wake for every
// connection, for nothing).
// It reports false, having done nothing, if the loop cannot take the
// listener; the caller then serves it the ordinary way.
func (s *Server) serveLoop(ln net.Listener, raw syscall.RawConn) (served bool, err error) {
	dfd := -1
	var derr error
	if cerr := raw.Control(func(fd uintptr) {
		dfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil || derr != nil {
		return false, nil
	}
	failed, aerr := s.loop.addListener(dfd, ln.Addr())
	if aerr != nil {
		unix.Close(dfd)
		// A stopped loop means a shutdown: nothing to serve.
		return errors.Is(aerr, net.ErrClosed), nil
	}
	ln.Close()
	select {
	case <-s.done:
		return true, nil
	case err := <-failed:
		if s.isStopping() {
			return true, nil
		}
		s.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
		return true, err
	}
}

// logOpened logs a new connection at -d -d.
func (s *Server) logOpened(c *conn, peer netip.Addr) {
	if s.logConns {
		s.log.Log(context.Background(), LevelConn, "connection opened",
			"conn", uint64(c.m.Config().ID), "fd", c.fd, "peer", peer.String(), "local", c.m.Config().Local)
	}
}
