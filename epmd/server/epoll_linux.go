package server

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

const defaultBackend = BackendEpoll

// The epoll backend serves every socket with plain system calls from the
// owner goroutine itself, waiting in one epoll set, much as stock epmd
// serves all its sockets from one select() loop:
//
//   - the listening sockets (level-triggered; accept4 until EAGAIN, a
//     batch at a time);
//   - pending connections, whose request has not fully arrived: each new
//     connection is read once, after the other events of the round that
//     accepted it, and only if its request is not complete then does it
//     join the set, until its packet deadline;
//   - the owner's connections: kept sockets, open after an ALIVE2 reply,
//     until a byte, end of stream or an error ends them; and replies too
//     big for the socket buffer, written as the socket drains, until the
//     packet timeout;
//   - an eventfd that other goroutines poke when they post an event.
//
// No connection meets the runtime's network poller, a goroutine or a
// timer, and requests never move between threads: a look-up is an accept,
// a read, a write and a close, plus an epoll_ctl when the request had not
// arrived at accept. Every descriptor is closed by the owner, so a number
// is never used after its close. Epoll events carry keys, never descriptor
// numbers: an owner's connection's key is its ConnID.

// Epoll keys: the wake eventfd is 0, the owner's connections their ConnID
// (from 1, far below the flag bits), pending connections and listeners a
// sequence number with a flag bit.
const (
	keyWake    = 0
	keyPending = 1 << 63
	keyListen  = 1 << 62
)

// yieldEvery is how often the loop passes through the scheduler, well
// within the runtime's 10 ms preemption limit.
const yieldEvery = 5 * time.Millisecond

// maxWriteChunk bounds the bytes of a reply written in one step (see
// write): about 50 µs of copying.
const maxWriteChunk = 256 << 10

// acceptBatch bounds the accepts made per listener event, so that a flood
// of connections cannot starve the pending ones of their turn.
const acceptBatch = 64

// Events watched on a kept socket: readable, or the peer's end (FIN) even
// when a half-close leaves nothing to read.
const watchIn = unix.EPOLLIN | unix.EPOLLRDHUP

// epollBackend is the event loop. All of it is the owner goroutine's.
type epollBackend struct {
	s      *Server
	epfd   int
	wakefd int // eventfd, poked by post

	pending  map[uint64]*rawConn
	queue    []uint64 // pending keys in accept order; stale keys are skipped
	seq      uint64
	free     []*rawConn
	lns      map[uint64]*listenSock
	lnSeq    uint64
	disarmed []*listenSock     // listeners backing off after a failed accept
	writing  []registry.ConnID // connections with a reply under way
	p2       wire.PortPlease2Req
	names    map[string]string // names decode has seen
	batch    []acceptedConn
	stopped  bool
	failed   bool // epoll_wait failed: the descriptors may not be trusted
	frozen   bool // handing over: listeners and kept sockets out of the set
}

// listenSock is a listening socket the loop accepts on: a duplicate of a
// listener's descriptor, so that the listener itself can be closed and no
// longer wakes the runtime's poller for every connection.
type listenSock struct {
	fd      int
	key     uint64
	addr    net.Addr
	failed  func(error)
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

func newEpoll(s *Server) (*epollBackend, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &epollBackend{
		s: s, epfd: epfd, wakefd: wake,
		pending: make(map[uint64]*rawConn),
		names:   make(map[string]string),
		lns:     make(map[uint64]*listenSock),
	}
	if err := l.ctl(unix.EPOLL_CTL_ADD, wake, keyWake, unix.EPOLLIN); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return l, nil
}

func (l *epollBackend) ctl(op, fd int, key uint64, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	return epollCtlRaw(l.epfd, op, fd, &ev)
}

func (l *epollBackend) wake() {
	one := [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

// listen makes the loop accept on a duplicate of ln's socket, and closes
// ln, so that the runtime's poller stops watching it (it would wake for
// every connection, for nothing).
func (l *epollBackend) listen(ln net.Listener, failed func(error)) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return errors.New("server: the epoll backend serves listeners with a descriptor only")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	dfd := -1
	var derr error
	if err := raw.Control(func(fd uintptr) {
		dfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	l.lnSeq++
	ls := &listenSock{fd: dfd, key: keyListen | l.lnSeq, addr: ln.Addr(), failed: failed}
	if err := l.ctl(unix.EPOLL_CTL_ADD, dfd, ls.key, unix.EPOLLIN); err != nil {
		unix.Close(dfd)
		return err
	}
	l.lns[ls.key] = ls
	ln.Close()
	return nil
}

// stop closes the listeners' duplicates and the pending connections; run
// returns at the end of its round.
func (l *epollBackend) stop() {
	l.stopped = true
	for _, rc := range l.pending {
		closeRaw(rc.fd)
	}
	clear(l.pending)
	l.queue = nil
	for _, a := range l.batch {
		closeRaw(a.fd) // accepted in the round the loop stopped in
	}
	l.batch = l.batch[:0]
	for _, ls := range l.lns {
		unix.Close(ls.fd)
	}
	clear(l.lns)
	l.disarmed = nil
}

func (l *epollBackend) exit() {
	unix.Close(l.epfd)
	unix.Close(l.wakefd)
}

func (l *epollBackend) run() {
	events := make([]unix.EpollEvent, 256)
	lastYield := time.Now()
	for !l.stopped {
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
		timeout := l.timers()
		if l.stopped {
			return // a timer's event shut the daemon down
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.s.log.Error("epoll_wait failed; the daemon stops serving", "err", err)
			l.s.shutdown("shutting down: the event loop failed", slog.LevelDebug)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			switch {
			case key == keyWake:
				var b [8]byte
				unix.Read(l.wakefd, b[:])
				l.s.drain()
			case key&keyPending != 0:
				l.pendingReady(key)
			case key&keyListen != 0:
				l.acceptOn(key)
			default:
				l.ready(registry.ConnID(key), ev.Events)
			}
			if l.stopped {
				return
			}
		}
		l.serveAccepted()
	}
}

// timers times out the pending connections whose packet deadline passed
// and the replies whose write deadline passed, arms again the listeners
// whose back-off is over, answers the owner's due probes, and returns how
// long epoll_wait may sleep, in milliseconds (-1: until an event).
func (l *epollBackend) timers() int {
	next := l.s.idle()
	if len(l.queue) == 0 && len(l.disarmed) == 0 && len(l.writing) == 0 && next.IsZero() {
		return -1
	}
	now := time.Now()
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for len(l.queue) > 0 {
		key := l.queue[0]
		rc := l.pending[key]
		if rc == nil {
			l.queue = l.queue[1:] // already served
			continue
		}
		if d := rc.accepted.Add(l.s.cfg.PacketTimeout); d.After(now) {
			soonest(d)
			break
		}
		l.queue = l.queue[1:]
		delete(l.pending, key)
		l.s.arrived(rc.arrival(), nil, fsm.Timeout{})
		l.put(rc)
	}
	if len(l.queue) == 0 {
		l.queue = nil // let a long queue's array go
	}
	if len(l.writing) > 0 {
		w := l.writing[:0]
		for _, id := range l.writing {
			c := l.s.o.conns[id]
			if c == nil || c.w == nil || c.w.out == nil {
				continue
			}
			if !c.w.by.After(now) {
				c.w.out = nil
				l.s.sent(c, unix.ETIMEDOUT)
				continue
			}
			w = append(w, id)
			soonest(c.w.by)
		}
		l.writing = w
	}
	armed := l.disarmed[:0]
	for _, ls := range l.disarmed {
		if l.frozen {
			armed = append(armed, ls) // out of the set until thawed
			continue
		}
		if l.lns[ls.key] != ls {
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
		soonest(ls.retryAt)
	}
	l.disarmed = armed
	if next.IsZero() {
		return -1
	}
	// epoll_wait takes an int of milliseconds: a packet timeout of weeks
	// is waited for in steps.
	return int(min(max(next.Sub(now), 0)/time.Millisecond+1, 1<<30))
}

// acceptOn accepts what a listener has, a batch at a time; the round's
// other events are handled before the batch is served (serveAccepted).
func (l *epollBackend) acceptOn(key uint64) {
	ls := l.lns[key]
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
func (l *epollBackend) serveAccepted() {
	for i := 0; i < len(l.batch); i++ {
		a := l.batch[i]
		l.batch[i] = acceptedConn{}
		l.accepted(a.fd, a.peer)
		if l.stopped {
			return // stop closed the rest of the batch
		}
	}
	l.batch = l.batch[:0]
}

// dropListener stops accepting on a listener that failed for good, and
// tells its Serve.
func (l *epollBackend) dropListener(ls *listenSock, err error) {
	if l.lns[ls.key] != ls {
		return
	}
	delete(l.lns, ls.key)
	// The socket may stay open elsewhere (systemd keeps the sockets it
	// passes), and epoll forgets a descriptor only with the last one of
	// its file: leave the set before closing.
	l.ctl(unix.EPOLL_CTL_DEL, ls.fd, 0, 0)
	unix.Close(ls.fd)
	ls.failed(err)
}

func (l *epollBackend) get() *rawConn {
	if n := len(l.free); n > 0 {
		rc := l.free[n-1]
		l.free = l.free[:n-1]
		return rc
	}
	return new(rawConn)
}

// put recycles a rawConn (and its 3 KiB framing buffer) once its
// connection has arrived at the owner.
func (l *epollBackend) put(rc *rawConn) {
	if len(l.free) >= 64 {
		return
	}
	rc.fr.Reset()
	rc.key = 0
	l.free = append(l.free, rc)
}

func (rc *rawConn) arrival() arrival {
	return arrival{fd: rc.fd, peer: rc.peer, local: rc.local, inSet: rc.key != 0}
}

// accepted serves a new connection at once if its request is already
// complete; otherwise it waits in the epoll set.
func (l *epollBackend) accepted(nfd int, peer netip.Addr) {
	if f := l.s.faults; f != nil && f.peer != nil {
		peer = f.peer(peer)
	}
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
		rc.key = 0
		l.s.arrived(rc.arrival(), nil, fsm.PeerClosed{Err: err})
		l.put(rc)
		return
	}
	l.pending[rc.key] = rc
	l.queue = append(l.queue, rc.key)
}

// pendingReady goes on with a pending connection that has bytes, or its
// end.
func (l *epollBackend) pendingReady(key uint64) {
	rc := l.pending[key]
	if rc == nil || l.advance(rc) {
		return // still waiting: level-triggered, the next bytes wake it
	}
	delete(l.pending, key)
	l.put(rc)
}

// advance reads what the socket holds and, once the request is complete or
// the connection failed, hands it to the owner. It reports whether the
// connection must wait for more.
func (l *epollBackend) advance(rc *rawConn) (waiting bool) {
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
			if derr != nil {
				ev = fsm.Malformed{Err: derr}
				break
			}
			l.s.arrived(rc.arrival(), req, nil)
			return false
		}
	case n == 0 && rerr == nil:
		ev = fsm.PeerClosed{Buffered: rc.fr.Buffered()}
	case errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR):
		return true
	default:
		ev = fsm.PeerClosed{Err: rerr, Buffered: rc.fr.Buffered()}
	}
	l.s.arrived(rc.arrival(), nil, ev)
	return false
}

// maxInterned bounds the names decode keeps.
const maxInterned = 1024

// decode decodes a request. A PORT_PLEASE2 is decoded into the loop's own
// value, valid until the next decode, with a name the loop has seen
// before when it can: a look-up of a known name allocates nothing.
func (l *epollBackend) decode(body []byte) (wire.Request, error) {
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

// ready handles an event of an owner's connection: its socket drained
// enough for more of a reply, or a kept socket has something to say.
func (l *epollBackend) ready(id registry.ConnID, events uint32) {
	c := l.s.o.conns[id]
	if c == nil || c.closed {
		return // closed meanwhile; epoll dropped it with the close
	}
	if c.w != nil && c.w.out != nil {
		l.flush(c)
		return
	}
	if !c.kept {
		return
	}
	// Like stock epmd, read what came (up to its whole buffer,
	// INBUF_SIZE = 3060 bytes) before closing the socket, so that the
	// client sees an orderly end rather than the reset a close with
	// unread bytes would send.
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
	l.s.event(c, ev)
}

// write writes b with one write(2), unless a fault is injected. It
// writes at most maxWriteChunk bytes: a large reply leaves in steps, one
// per round of the loop, so that the copy into the socket never holds up
// the other connections for long.
func (l *epollBackend) write(fd int, b []byte) (int, error) {
	if len(b) > maxWriteChunk {
		b = b[:maxWriteChunk]
	}
	if f := l.s.faults; f != nil && f.write != nil {
		switch f.write() {
		case faultError:
			return -1, unix.EPIPE
		case faultReset:
			return -1, unix.ECONNRESET
		case faultAgain:
			return -1, unix.EAGAIN
		case faultPartial:
			if len(b) > 1 {
				n, err := writeRaw(fd, b[:len(b)/2])
				if err == nil {
					err = unix.EAGAIN
				}
				return n, err
			}
		}
	}
	return writeRaw(fd, b)
}

// send writes a reply at once if the socket takes it; otherwise the rest
// waits for the socket to drain (flush), under the write deadline.
func (l *epollBackend) send(c *conn, b []byte) (bool, error) {
	n, err := l.write(c.fd, b)
	if err == nil && n == len(b) {
		return true, nil
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		return false, err
	}
	if c.w == nil {
		c.w = new(reply)
	}
	c.w.out, c.w.off = b, max(n, 0)
	c.w.by = time.Now().Add(l.s.cfg.PacketTimeout)
	op := unix.EPOLL_CTL_ADD
	if c.inSet || c.watched {
		op = unix.EPOLL_CTL_MOD // it waited there as a pending connection
	}
	if err := l.ctl(op, c.fd, uint64(c.id), unix.EPOLLOUT); err != nil {
		c.w.out = nil
		return false, err
	}
	c.inSet, c.watched = false, true
	l.writing = append(l.writing, c.id)
	return false, nil
}

// flush writes more of a reply under way; once it is all written, or the
// write fails, the owner goes on with the connection.
func (l *epollBackend) flush(c *conn) {
	w := c.w
	n, err := l.write(c.fd, w.out[w.off:])
	if n > 0 {
		w.off += n
	}
	switch {
	case err == nil && w.off == len(w.out):
		w.out = nil
		l.s.sent(c, nil)
	case err != nil && !errors.Is(err, unix.EAGAIN):
		w.out = nil
		l.s.sent(c, err)
	}
}

func (l *epollBackend) keep(c *conn) error {
	if l.frozen {
		return l.unwatch(c) // watched again when thawed
	}
	op := unix.EPOLL_CTL_ADD
	if c.inSet || c.watched {
		op = unix.EPOLL_CTL_MOD
	}
	if err := l.ctl(op, c.fd, uint64(c.id), watchIn); err != nil {
		return err
	}
	c.inSet, c.watched = false, true
	return nil
}

// hold takes c out of the set: a pending key left there would wake the
// loop, level-triggered, for nothing, if its client sent more or closed.
func (l *epollBackend) hold(c *conn) {
	if c.inSet || c.watched {
		l.ctl(unix.EPOLL_CTL_DEL, c.fd, 0, 0)
		c.inSet, c.watched = false, false
	}
}

// gone peeks at the socket's receive queue: anything but EAGAIN (a byte,
// end of stream, an error) ends the registration.
func (l *epollBackend) gone(c *conn) bool {
	_, err := peekRaw(c.fd)
	return err != unix.EAGAIN
}

// close closes the socket; epoll forgets it with its only descriptor. A
// lingering close with a zero timeout resets at once.
func (l *epollBackend) close(c *conn, reset bool) {
	if reset {
		unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	closeRaw(c.fd)
}
