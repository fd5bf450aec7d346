// Package server is the I/O shell of the daemon: it accepts connections,
// frames requests, feeds the per-connection state machine (package fsm) and
// carries out the actions it returns. Every protocol decision is fsm's; the
// server decides only how bytes move.
//
// One-shot requests are served in the accept loop with plain system calls
// (fastpath.go); requests still on their way, and sockets kept after an
// ALIVE2, wait in one epoll poller (poller.go); an ALIVE2 exchange runs in
// its own goroutine. Every fsm step runs under one mutex that also guards
// the registry, so the daemon's behaviour is the sequence of (connection,
// event) pairs, which can be replayed against fsm. docs/design.md draws
// the paths.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// DefaultPacketTimeout is how long a client has, from accept, to send a
// complete request (stock epmd's CLOSE_TIMEOUT).
const DefaultPacketTimeout = 60 * time.Second

// DefaultProbeGrace is how long an ALIVE2 for a name that is registered
// waits for the holder's socket to end before it is refused as a duplicate.
const DefaultProbeGrace = 250 * time.Millisecond

// maxProbePause is the longest pause between two looks at the holder.
const maxProbePause = 16 * time.Millisecond

// Accept back-off when the process is out of file descriptors: stock epmd
// exits; we wait, starting small and doubling, and keep serving.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// Config holds the daemon's options.
type Config struct {
	// Port is the configured port, reported in the 4-byte header of NAMES
	// and DUMP replies whatever socket the request came in on.
	Port uint32
	// Relaxed allows KILL while nodes are registered, and STOP at all.
	Relaxed bool
	// Debug is the -d level; any level above 0 also shrinks the
	// remembered-names cap to 5, as stock epmd does.
	Debug int
	// PacketTimeout limits how long a request may take to arrive, counted
	// from accept and not refreshed by each byte (the CVE-2026-42792 fix).
	// Registered connections have no timeout. Zero means the default.
	PacketTimeout time.Duration
	// ProbeGrace is how long an ALIVE2 for a registered name waits, in its
	// own goroutine, for the holder's socket to show that its peer closed
	// it before the newcomer is refused as a duplicate (erlang/otp#11083).
	// A live duplicate is refused after this delay. Zero means
	// DefaultProbeGrace; a negative value means look once, without waiting.
	ProbeGrace time.Duration
	// DelayAccept and DelayWrite are stock epmd's debugging delays: a
	// sleep before each accept and before each reply.
	DelayAccept, DelayWrite time.Duration
	// Logger receives the daemon's messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock that new names' creation numbers are drawn from;
	// nil means time.Now. Deadlines always use the real clock.
	Now func() time.Time
}

// Server is a running epmd.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex // guards everything below, and every fsm step
	reg      *registry.Registry
	conns    map[registry.ConnID]*conn
	lns      map[net.Listener]struct{}
	nextID   registry.ConnID
	stopping bool

	poller *poller // watches kept sockets; nil if epoll is unavailable
	stopFd int     // eventfd, readable once the server stops: wakes accept loops

	wg       sync.WaitGroup // connection and accept goroutines
	done     chan struct{}  // closed when shutdown begins
	doneOnce sync.Once
	stopped  chan struct{} // closed when beginShutdown has closed everything
}

type conn struct {
	nc net.Conn
	m  *fsm.Conn
	// writeFailed is set, by the connection's own goroutine, when a reply
	// could not be written in full: the close is then a reset, so that
	// the client sees an error rather than a reply that merely looks
	// short (NAMES and DUMP end at the close).
	writeFailed bool
}

// New returns a server with an empty registry.
func New(cfg Config) *Server {
	if cfg.PacketTimeout <= 0 {
		cfg.PacketTimeout = DefaultPacketTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProbeGrace == 0 {
		cfg.ProbeGrace = DefaultProbeGrace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxOld := registry.MaxRemembered
	if cfg.Debug > 0 {
		maxOld = registry.DebugMaxRemembered
	}
	s := &Server{
		cfg:   cfg,
		log:   log,
		reg:   registry.New(maxOld),
		conns: make(map[registry.ConnID]*conn),
		lns:   make(map[net.Listener]struct{}),
		done:  make(chan struct{}),

		stopped: make(chan struct{}),
	}
	s.stopFd = -1
	if fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		s.stopFd = fd
	}
	p, err := newPoller(s)
	if err != nil {
		log.Warn("epoll unavailable: each kept connection waits in its own goroutine", "err", err)
	}
	s.poller = p
	return s
}

// Done is closed when the server begins shutting down, after a KILL
// request or a call to Shutdown.
func (s *Server) Done() <-chan struct{} { return s.done }

// Serve accepts connections on ln until the server shuts down or ln fails
// for good. It returns nil after a shutdown. Serve may be called once per
// listener, concurrently.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	if sc, ok := ln.(syscall.Conn); ok && s.stopFd >= 0 {
		if raw, err := sc.SyscallConn(); err == nil {
			return s.serveRaw(ln, raw)
		}
	}
	backoff := time.Duration(0)
	for {
		if s.cfg.DelayAccept > 0 {
			time.Sleep(s.cfg.DelayAccept)
		}
		nc, err := ln.Accept()
		if err != nil {
			if s.isStopping() {
				return nil
			}
			if isTemporaryAcceptError(err) {
				backoff = nextBackoff(backoff)
				s.log.Error("error in accept, backing off", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			s.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
			return err
		}
		backoff = 0
		s.startConn(nc, new(wire.Framer), time.Now())
	}
}

// isTemporaryAcceptError reports accept failures worth retrying: out of
// descriptors or memory, and connections aborted before accept.
func isTemporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// startConn registers a new connection and serves it in its own
// goroutine, going on from the bytes already in fr; the packet timeout
// counts from accepted.
func (s *Server) startConn(nc net.Conn, fr *wire.Framer, accepted time.Time) {
	local := fsm.IsLocal(addrOf(nc.RemoteAddr()), addrOf(nc.LocalAddr()))
	fd := fdOf(nc)

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.nextID++
	id := s.nextID
	c := &conn{nc: nc, m: fsm.New(fsm.Config{
		ID: id, Fd: fd, Local: local, Relaxed: s.cfg.Relaxed, Port: s.cfg.Port,
	})}
	s.conns[id] = c
	s.wg.Add(1)
	s.mu.Unlock()

	if s.log.Enabled(context.Background(), LevelConn) {
		s.log.Log(context.Background(), LevelConn, "connection opened",
			"conn", uint64(id), "fd", fd, "peer", addrOf(nc.RemoteAddr()).String(), "local", local)
	}
	go s.serveConn(c, fr, accepted)
}

// serveConn reads one request, executes it, and for a kept ALIVE2 socket
// waits for the peer's next byte or close.
func (s *Server) serveConn(c *conn, fr *wire.Framer, accepted time.Time) {
	defer s.wg.Done()
	// The packet timeout counts from accept and is never refreshed: a
	// client dribbling bytes cannot extend it.
	c.nc.SetReadDeadline(accepted.Add(s.cfg.PacketTimeout))
	if s.run(c, s.readRequest(c, fr)) {
		return
	}
	// Kept socket (registered, or ALIVE2 refused): no timeout; any byte
	// or EOF ends it. The poller watches it from now on, so it holds no
	// goroutine; without a poller, this goroutine waits.
	c.nc.SetReadDeadline(time.Time{})
	if s.poller != nil && s.poller.watch(c) {
		return
	}
	var b [3060]byte // consume what came, as stock does (INBUF_SIZE), so the close is orderly
	n, err := c.nc.Read(b[:])
	var ev fsm.Event = fsm.Data{}
	if n == 0 {
		ev = fsm.PeerClosed{Err: err}
	}
	s.run(c, ev)
}

// readRequest reads until one frame is complete or the connection fails,
// and returns the corresponding event.
func (s *Server) readRequest(c *conn, fr *wire.Framer) fsm.Event {
	n := 0 // the accept loop may have read the whole frame already
	for {
		body, ferr := fr.Advance(n)
		switch {
		case ferr != nil:
			return fsm.Malformed{Err: ferr}
		case body != nil:
			req, derr := wire.DecodeRequest(body)
			if derr != nil {
				return fsm.Malformed{Err: derr}
			}
			return fsm.Received{Req: req, Now: s.cfg.Now().Unix()}
		}
		var err error
		n, err = c.nc.Read(fr.Next())
		if n > 0 {
			continue
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fsm.Timeout{}
			}
			return fsm.PeerClosed{Err: err, Buffered: fr.Buffered()}
		}
	}
}

// run steps the machine with ev and carries out its actions. A failed
// write is fed back as WriteFailed and the machine's new actions replace
// the planned ones; if the machine had already planned to close (it
// absorbs the event), the planned actions go on, Close among them. It
// reports whether the connection is finished.
func (s *Server) run(c *conn, ev fsm.Event) (closed bool) {
	acts := s.step(c, ev)
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.Send:
			if err := s.write(c, a.Resp); err != nil {
				c.writeFailed = true
				if more := s.step(c, fsm.WriteFailed{Err: err}); len(more) > 0 {
					acts, i = more, -1
				}
			}
		case fsm.Close:
			s.closeConn(c, a)
			return true
		case fsm.Shutdown:
			defer s.beginShutdown(killMessage)
		}
	}
	return false
}

// killMessage is what stock epmd logs, even without -d, when KILL stops it.
const killMessage = "got KILL_REQ - terminates normal"

// step runs one fsm step under the lock and carries out the actions that
// touch other connections while still holding it.
//
// A ProbeOwner is answered under the lock when the holder's socket already
// shows its end. Otherwise the lock is released while this connection alone
// waits, up to the probe grace, for the holder's socket to end; then
// OwnerProbed is stepped under the lock again. fsm keeps the pending ALIVE2
// meanwhile, and no other event can reach this connection: its goroutine
// is the one waiting.
func (s *Server) step(c *conn, ev fsm.Event) []fsm.Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	acts := s.stepLocked(c, ev)
	if len(acts) == 1 {
		if p, ok := acts[0].(fsm.ProbeOwner); ok {
			holder := s.conns[p.ID]
			gone := holder == nil || peerGone(holder)
			if !gone && s.cfg.ProbeGrace > 0 {
				s.mu.Unlock()
				gone = s.awaitGone(holder)
				s.mu.Lock()
			}
			acts = s.stepLocked(c, fsm.OwnerProbed{Gone: gone})
		}
	}
	for _, a := range acts {
		switch a := a.(type) {
		case fsm.CloseConn:
			// Forget it here too: a socket the poller watches gets no
			// event once we close it ourselves.
			if other := s.conns[a.ID]; other != nil {
				delete(s.conns, a.ID)
				other.nc.Close()
			}
		case fsm.RegisteredNode:
			s.log.Debug("registered node", "conn", uint64(c.m.Config().ID), "name", a.Node.Name,
				"port", a.Node.Port, "creation", a.Creation)
		case fsm.UnregisteredNode:
			s.log.Debug("unregistered node", "conn", uint64(c.m.Config().ID), "name", a.Name)
		case fsm.Refusal:
			// Stock's words alone, as stock logs them without -d.
			s.log.Info(a.Detail)
		}
	}
	return acts
}

func (s *Server) stepLocked(c *conn, ev fsm.Event) []fsm.Action {
	before := c.m.State()
	acts := c.m.Step(s.reg, ev)
	if s.log.Enabled(context.Background(), LevelTrace) {
		s.log.Log(context.Background(), LevelTrace, "step",
			"conn", uint64(c.m.Config().ID), "state", before.String(), "event", eventName(ev), "next", c.m.State().String())
	}
	return acts
}

// peerGone reports whether a connection's peer has already closed or reset
// it, or sent data on it (fatal for a registration socket), or whether it
// is closed on our side, without waiting: it peeks at the socket's receive
// queue. The connection's own goroutine would see the same thing as soon
// as it is scheduled; looking now lets a quickly restarting node reclaim
// its name (erlang/otp#11083). It is safe without the lock.
func peerGone(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	err = raw.Control(func(fd uintptr) {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing pending, the peer is alive. Anything else, a
		// byte, end of stream (n == 0) or an error, ends the registration.
		gone = rerr != syscall.EAGAIN && rerr != syscall.EINTR
	})
	return gone || err != nil
}

// awaitGone polls the holder's socket, without the lock, until it shows
// its end or the probe grace has passed, and reports whether it ended. An
// Erlang node (OTP 25) that stops and restarts distribution closes its old
// registration socket asynchronously, when the VM gets round to closing
// the dead erl_epmd process's port, and that can come a moment after the
// new ALIVE2: with a peek alone about 1 restart in 400 was still refused.
// Only an ALIVE2 for a name that is held waits, and only its own goroutine.
func (s *Server) awaitGone(holder *conn) bool {
	start := time.Now()
	deadline := start.Add(s.cfg.ProbeGrace)
	pause := time.Millisecond
	t := time.NewTimer(pause)
	defer t.Stop()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		t.Reset(min(pause, left))
		select {
		case <-t.C:
		case <-s.done:
			return false
		}
		if peerGone(holder) {
			s.log.Debug("holder of a requested name went away", "waited", time.Since(start))
			return true
		}
		pause = min(2*pause, maxProbePause)
	}
}

// write sends one reply in one write.
func (s *Server) write(c *conn, r wire.Response) error {
	b, err := r.AppendBinary(nil)
	if err != nil {
		return err
	}
	if s.cfg.DelayWrite > 0 {
		time.Sleep(s.cfg.DelayWrite)
	}
	// A client that never reads a large reply must not hold its
	// goroutine and socket forever.
	c.nc.SetWriteDeadline(time.Now().Add(s.cfg.PacketTimeout))
	_, err = c.nc.Write(b)
	return err
}

func (s *Server) closeConn(c *conn, cl fsm.Close) {
	id := c.m.Config().ID
	s.mu.Lock()
	delete(s.conns, id)
	s.mu.Unlock()
	if tc, ok := c.nc.(*net.TCPConn); ok && c.writeFailed {
		tc.SetLinger(0) // discard what is queued and send a reset
	}
	c.nc.Close()
	s.logClose(id, cl)
}

// logClose logs a close: stock epmd's own message, alone, when it has one
// (refusals and protocol errors show without -d, as stock's level-0
// messages do); otherwise a debug line.
func (s *Server) logClose(id registry.ConnID, cl fsm.Close) {
	if cl.Detail != "" {
		s.log.Info(cl.Detail)
	}
	if s.log.Enabled(context.Background(), LevelConn) {
		s.log.Log(context.Background(), LevelConn, "connection closed", "conn", uint64(id), "reason", cl.Reason)
	}
}

// beginShutdown stops accepting, closes every connection (registered nodes
// see their socket close) and closes Done.
//
// The accept loops are woken first (the stopping flag, Done, the stop
// eventfd), and the listeners closed after, without the lock: closing a
// listener waits until no accept loop is inside it.
func (s *Server) beginShutdown(why string) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	lns := make([]net.Listener, 0, len(s.lns))
	for ln := range s.lns {
		lns = append(lns, ln)
	}
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	if s.stopFd >= 0 {
		one := [8]byte{1}
		syscall.Write(s.stopFd, one[:]) // stays readable: every accept loop wakes
	}
	s.mu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
	if why == killMessage {
		s.log.Info(why)
	} else {
		s.log.Debug("shutting down", "reason", why)
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.nc.Close()
	}
	if s.poller != nil {
		s.poller.stop()
	}
	close(s.stopped)
}

// Shutdown closes the listeners and every connection, then waits for the
// connection goroutines to finish or ctx to expire. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown("shutdown")
	// A KILL may have begun the shutdown in another goroutine: once it
	// has stopped the poller, nothing starts a connection goroutine.
	select {
	case <-s.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		s.closeStopFd()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeStopFd releases the stop eventfd once no accept loop can poll it.
func (s *Server) closeStopFd() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopFd >= 0 {
		syscall.Close(s.stopFd)
		s.stopFd = -1
	}
}

// Snapshot returns the registered and remembered records, for tests and
// diagnostics.
func (s *Server) Snapshot() (live, remembered []registry.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reg.Live(), s.reg.Remembered()
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Log levels below Debug for the -d levels 2 and 3.
const (
	LevelConn  = slog.LevelDebug - 4 // -d -d: connections opened and closed
	LevelTrace = slog.LevelDebug - 8 // -d -d -d: every fsm step
)

func addrOf(a net.Addr) netip.Addr {
	if a == nil {
		return netip.Addr{} // e.g. a peer that reset before we looked
	}
	if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr()
	}
	return netip.Addr{}
}

// fdOf returns the connection's file descriptor number, shown by DUMP, or
// -1 when it has none.
func fdOf(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func eventName(ev fsm.Event) string {
	switch ev := ev.(type) {
	case fsm.Received:
		return "received " + ev.Req.Tag().String()
	case fsm.Malformed:
		return "malformed: " + ev.Err.Error()
	case fsm.Data:
		return "data"
	case fsm.PeerClosed:
		return "peer closed"
	case fsm.Timeout:
		return "timeout"
	case fsm.WriteFailed:
		return "write failed"
	case fsm.OwnerProbed:
		return "owner probed, gone=" + strconv.FormatBool(ev.Gone)
	}
	return "unknown"
}
