package server

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/fsm"
)

// A poller watches the sockets that wait for nothing but their end: the
// ones kept open after an ALIVE2 reply (registered nodes, and refused
// registrations, which stock epmd also keeps). One goroutine blocks in
// epoll_wait for all of them, so a held registration costs no goroutine and
// no stack: memory per registration stays small, and the garbage collector
// has no stacks to scan for them.
//
// The connection still belongs to its net.Conn, which closes it; epoll
// drops a descriptor by itself when it is closed. Events carry the
// connection's id, never its descriptor number, so a recycled number can
// never be mistaken for the connection that had it.
type poller struct {
	s    *Server
	epfd int
	wake int // eventfd: written to stop the loop, or to look at deadlines again

	// New connections whose request is not complete yet wait here too,
	// served with plain system calls (see fastpath.go). Their deadlines
	// are accept time plus one constant, so a FIFO keeps them in order.
	mu      sync.Mutex
	pending map[uint64]*rawConn
	queue   []uint64 // keys in accept order; stale keys are skipped
	seq     uint64
	stopped bool

	stopOnce sync.Once
	done     chan struct{}
}

// Epoll data: the wake eventfd is 0, kept connections their ConnID
// (from 1), pending connections a key with the top bit set.
const (
	pollerWakeID = 0
	pendingBit   = 1 << 63
)

func newPoller(s *Server) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, errno
	}
	p := &poller{s: s, epfd: epfd, wake: int(wake), done: make(chan struct{}), pending: make(map[uint64]*rawConn)}
	if err := p.ctl(syscall.EPOLL_CTL_ADD, p.wake, pollerWakeID); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.wake)
		return nil, err
	}
	go p.loop()
	return p, nil
}

func (p *poller) ctl(op, fd int, id registry.ConnID) error {
	return p.ctlEvents(op, fd, uint64(id), syscall.EPOLLIN|syscall.EPOLLRDHUP)
}

func (p *poller) ctlEvents(op, fd int, key uint64, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
	return syscall.EpollCtl(p.epfd, op, fd, &ev)
}

// oneShotIn arms a pending connection for one event at a time: once it is
// handed to a goroutine its descriptor is duplicated, and a registration
// that stayed armed would keep firing for the duplicate.
const oneShotIn = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// await makes a new connection wait in the poller for the rest of its
// request, until its packet deadline. It reports false if it cannot.
func (p *poller) await(rc *rawConn) bool {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	p.seq++
	key := pendingBit | p.seq
	p.pending[key] = rc
	p.queue = append(p.queue, key)
	first := len(p.queue) == 1
	p.mu.Unlock()
	if err := p.ctlEvents(syscall.EPOLL_CTL_ADD, rc.fd, key, oneShotIn); err != nil {
		p.mu.Lock()
		delete(p.pending, key)
		p.mu.Unlock()
		return false
	}
	if first {
		p.poke() // the loop may be sleeping with no deadline to watch
	}
	return true
}

func (p *poller) poke() {
	one := [8]byte{1}
	syscall.Write(p.wake, one[:])
}

// pendingReady serves a pending connection that has bytes, or its end.
func (p *poller) pendingReady(key uint64) {
	p.mu.Lock()
	rc := p.pending[key]
	p.mu.Unlock()
	if rc == nil {
		return
	}
	if p.s.advance(rc) {
		p.ctlEvents(syscall.EPOLL_CTL_MOD, rc.fd, key, oneShotIn) // re-arm
		return
	}
	p.mu.Lock()
	delete(p.pending, key)
	p.mu.Unlock()
}

// expire times out the pending connections whose packet deadline passed
// and returns how long until the next deadline (-1 for none).
func (p *poller) expire() int {
	now := time.Now()
	var late []*rawConn
	wait := -1
	p.mu.Lock()
	for len(p.queue) > 0 {
		rc := p.pending[p.queue[0]]
		if rc == nil {
			p.queue = p.queue[1:] // already served
			continue
		}
		if d := rc.deadline(p.s.cfg.PacketTimeout); d.After(now) {
			wait = int(d.Sub(now)/time.Millisecond) + 1
			break
		}
		delete(p.pending, p.queue[0])
		p.queue = p.queue[1:]
		late = append(late, rc)
	}
	if len(p.queue) == 0 {
		p.queue = nil // let a long queue's array go
	}
	p.mu.Unlock()
	for _, rc := range late {
		p.s.serveOneShot(rc, fsm.Timeout{})
	}
	return wait
}

// watch hands a kept connection to the poller. It reports false when the
// socket cannot be watched (the caller then waits on it in its own
// goroutine, as before).
func (p *poller) watch(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cerr = p.ctl(syscall.EPOLL_CTL_ADD, int(fd), c.m.Config().ID)
	}); err != nil || cerr != nil {
		return false
	}
	return true
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, p.expire())
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.s.log.Error("epoll_wait failed; kept connections are no longer watched", "err", err)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			switch {
			case key == pollerWakeID:
				var b [8]byte
				syscall.Read(p.wake, b[:])
				p.mu.Lock()
				stopped := p.stopped
				p.mu.Unlock()
				if stopped {
					return
				}
			case key&pendingBit != 0:
				p.pendingReady(key)
			default:
				p.ready(registry.ConnID(key))
			}
		}
	}
}

// ready handles a kept connection that has something to say: a byte (any
// byte ends a registration), end of stream, or an error.
func (p *poller) ready(id registry.ConnID) {
	p.s.mu.Lock()
	c := p.s.conns[id]
	p.s.mu.Unlock()
	if c == nil {
		return // already closed; epoll dropped it, or is about to
	}
	var ev fsm.Event
	switch n, err := peek(c.nc); {
	case errors.Is(err, syscall.EAGAIN):
		return // nothing after all
	case err != nil:
		ev = fsm.PeerClosed{Err: err}
	case n == 0:
		ev = fsm.PeerClosed{}
	default:
		ev = fsm.Data{}
		drain(c.nc)
	}
	// Stop watching before the close, so that no second event arrives
	// for a connection being finished.
	if sc, ok := c.nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) { p.ctl(syscall.EPOLL_CTL_DEL, int(fd), id) })
		}
	}
	p.s.run(c, ev)
}

// stop ends the loop and waits for it.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.poke()
		<-p.done
		for _, rc := range p.pending {
			syscall.Close(rc.fd)
		}
		syscall.Close(p.epfd)
		syscall.Close(p.wake)
	})
}

// drain consumes, in one non-blocking read, what arrived on a kept socket,
// as stock epmd's read loop does (up to its whole buffer, INBUF_SIZE = 3060
// bytes; only request reads keep one byte back) before it closes the
// connection: the client then sees an orderly end, not the reset a close
// with unread bytes would send.
func drain(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [3060]byte
	raw.Control(func(fd uintptr) { syscall.Read(int(fd), b[:]) })
}

// peek looks at the socket's receive queue without consuming it or
// waiting: n > 0 means data, n == 0 end of stream, EAGAIN nothing yet.
func peek(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, syscall.EAGAIN
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := raw.Control(func(fd uintptr) {
		var b [1]byte
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return 0, err
	}
	if errors.Is(rerr, syscall.EINTR) {
		rerr = syscall.EAGAIN
	}
	return n, rerr
}
