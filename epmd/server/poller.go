package server

import (
	"errors"
	"net"
	"sync"
	"syscall"

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
	wake int // eventfd: written to stop the loop

	stopOnce sync.Once
	done     chan struct{}
}

// pollerWakeID is the epoll data of the wake eventfd; connection ids start
// at 1.
const pollerWakeID = 0

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
	p := &poller{s: s, epfd: epfd, wake: int(wake), done: make(chan struct{})}
	if err := p.ctl(syscall.EPOLL_CTL_ADD, p.wake, pollerWakeID); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.wake)
		return nil, err
	}
	go p.loop()
	return p, nil
}

func (p *poller) ctl(op, fd int, id registry.ConnID) error {
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	return syscall.EpollCtl(p.epfd, op, fd, &ev)
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
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.s.log.Error("epoll_wait failed; kept connections are no longer watched", "err", err)
			return
		}
		for _, ev := range events[:n] {
			id := registry.ConnID(uint32(ev.Fd)) | registry.ConnID(uint32(ev.Pad))<<32
			if id == pollerWakeID {
				return
			}
			p.ready(id)
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
		one := [8]byte{1}
		syscall.Write(p.wake, one[:])
		<-p.done
		syscall.Close(p.epfd)
		syscall.Close(p.wake)
	})
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
