// Package server is the I/O shell of the daemon: it accepts connections,
// frames requests, feeds the per-connection state machine (package fsm) and
// carries out the actions it returns. Every protocol decision is fsm's; the
// server decides only how bytes move.
//
// Connections from real listeners are served by one event loop with plain
// system calls (loop.go); a listener without a descriptor gets a goroutine
// per connection, the ordinary Go way. Every fsm step runs under one mutex that also guards
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
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
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
	// from accept and not refreshed by each byte (docs/differences.md #1).
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
	// logConns and logSteps say whether the logger takes the -d -d and
	// -d -d -d levels, asked once rather than for every connection.
	logConns, logSteps bool

	mu    sync.Mutex // guards everything below, and every fsm step
	reg   *registry.Registry
	conns map[registry.ConnID]*conn
	// ended holds, per connection, the channels of ALIVE2 requests
	// waiting for it to go (awaitGone); forgetLocked closes them.
	ended    map[registry.ConnID][]chan struct{}
	lns      map[net.Listener]struct{}
	nextID   registry.ConnID
	stopping bool

	loop *evloop // serves listeners with descriptors; nil if epoll is unavailable

	// names caches the encoding of the last NAMES reply: the registry's
	// Names is the same slice until the registry changes.
	names atomic.Pointer[namesCache]

	wg       sync.WaitGroup // Serve calls and connection goroutines
	done     chan struct{}  // closed when shutdown begins
	doneOnce sync.Once
	stopped  chan struct{} // closed when beginShutdown has closed everything
}

// A conn is a connection and its state machine. Its socket is either a
// raw descriptor, served by the event loop (see the ownership rules in
// loop.go), or a net.Conn served by a goroutine of its own.
type conn struct {
	m  *fsm.Conn
	fd int      // the socket, when it is raw; -1 otherwise
	nc net.Conn // the socket, when it is a net.Conn
	// key is the epoll key a raw connection had while its request was
	// on its way (0 if it never waited), and watched says whether it is
	// in the epoll set as a kept socket.
	key     uint64
	watched bool
	// writeFailed is set when a reply could not be written in full: the
	// close is then a reset, so that the client sees an error rather
	// than a reply that merely looks short (NAMES and DUMP end at the
	// close).
	writeFailed bool
}

// closeSocket closes the connection's socket, with a reset if a reply
// failed. A raw socket in s.conns is closed only under s.mu, by whoever
// removed it.
func (c *conn) closeSocket() {
	if c.nc != nil {
		if tc, ok := c.nc.(*net.TCPConn); ok && c.writeFailed {
			tc.SetLinger(0) // discard what is queued and send a reset
		}
		c.nc.Close()
		return
	}
	if c.writeFailed {
		unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	closeRaw(c.fd)
}

// gone reports whether a connection's peer has already closed or reset
// it, or sent data on it (fatal for a registration socket), or whether it
// is closed on our side, without waiting: it peeks at the socket's receive
// queue. The connection's own handler would see the same thing as soon as
// it runs; looking now lets a quickly restarting node reclaim its name
// (erlang/otp#11083). For a raw socket the caller holds s.mu.
func (c *conn) gone() bool {
	if c.nc == nil {
		_, err := peekRaw(c.fd)
		return err != unix.EAGAIN
	}
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
		_, perr := peekRaw(int(fd))
		// EAGAIN: nothing pending, the peer is alive. Anything else, a
		// byte, end of stream or an error, ends the registration.
		gone = perr != unix.EAGAIN
	})
	return gone || err != nil
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
		cfg:      cfg,
		log:      log,
		logConns: log.Enabled(context.Background(), LevelConn),
		logSteps: log.Enabled(context.Background(), LevelTrace),
		reg:      registry.New(maxOld),
		conns:    make(map[registry.ConnID]*conn),
		lns:      make(map[net.Listener]struct{}),
		done:     make(chan struct{}),

		stopped: make(chan struct{}),
	}
	l, err := newLoop(s)
	if err != nil {
		log.Warn("epoll unavailable: each connection is served in its own goroutine", "err", err)
	} else {
		s.loop = l
	}
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

	if sc, ok := ln.(syscall.Conn); ok && s.loop != nil {
		if raw, err := sc.SyscallConn(); err == nil {
			if served, err := s.serveLoop(ln, raw); served {
				return err
			}
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
		s.startConn(nc)
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
// goroutine; the packet timeout counts from now, its accept.
func (s *Server) startConn(nc net.Conn) {
	local := fsm.IsLocal(addrOf(nc.RemoteAddr()), addrOf(nc.LocalAddr()))
	fd := fdOf(nc)

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		nc.Close()
		return
	}
	c := &conn{fd: -1, nc: nc, m: s.newMachine(fd, local)}
	s.conns[c.m.Config().ID] = c
	s.wg.Add(1)
	s.mu.Unlock()

	if s.logConns {
		s.log.Log(context.Background(), LevelConn, "connection opened",
			"conn", uint64(c.m.Config().ID), "fd", fd, "peer", addrOf(nc.RemoteAddr()).String(), "local", local)
	}
	go s.serveConn(c, time.Now())
}

// newMachine gives a new connection its id and state machine. The caller
// holds s.mu.
func (s *Server) newMachine(fd int, local bool) *fsm.Conn {
	s.nextID++
	return fsm.New(fsm.Config{ID: s.nextID, Fd: fd, Local: local, Relaxed: s.cfg.Relaxed, Port: s.cfg.Port})
}

// serveConn reads one request, executes it, and for a kept ALIVE2 socket
// waits for the peer's next byte or close.
func (s *Server) serveConn(c *conn, accepted time.Time) {
	defer s.wg.Done()
	// The packet timeout counts from accept and is never refreshed: a
	// client dribbling bytes cannot extend it.
	c.nc.SetReadDeadline(accepted.Add(s.cfg.PacketTimeout))
	if s.run(c, s.readRequest(c)) {
		return
	}
	// Kept socket (registered, or ALIVE2 refused): no timeout; any byte
	// or EOF ends it.
	c.nc.SetReadDeadline(time.Time{})
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
func (s *Server) readRequest(c *conn) fsm.Event {
	var fr wire.Framer
	n := 0
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
const killMessage = "got EPMD_KILL_REQ - terminates normal"

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
	if p, ok := probeOf(acts); ok {
		holder := s.conns[p.ID]
		gone := holder == nil || holder.gone()
		if !gone && s.cfg.ProbeGrace > 0 {
			s.mu.Unlock()
			gone = s.awaitGone(p.ID)
			s.mu.Lock()
		}
		acts = s.stepLocked(c, fsm.OwnerProbed{Gone: gone})
	}
	s.afterStepLocked(c, acts)
	return acts
}

// afterStepLocked carries out, under s.mu, the actions of a step that
// touch other connections, and logs what the step did.
func (s *Server) afterStepLocked(c *conn, acts []fsm.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case fsm.CloseConn:
			// STOP of another connection's node: close its socket now.
			// Removing it from s.conns first makes this the close.
			if other := s.conns[a.ID]; other != nil {
				s.forgetLocked(a.ID)
				other.closeSocket()
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
}

// stepRequestLocked is stepLocked for a complete request, through
// fsm.StepRequest, which does not allocate an event.
func (s *Server) stepRequestLocked(c *conn, req wire.Request) []fsm.Action {
	before := c.m.State()
	now := s.cfg.Now().Unix()
	acts := c.m.StepRequest(s.reg, req, now)
	if s.logSteps {
		s.log.Log(context.Background(), LevelTrace, "step",
			"conn", uint64(c.m.Config().ID), "state", before.String(),
			"event", eventName(fsm.Received{Req: req, Now: now}), "next", c.m.State().String())
	}
	return acts
}

func (s *Server) stepLocked(c *conn, ev fsm.Event) []fsm.Action {
	before := c.m.State()
	acts := c.m.Step(s.reg, ev)
	if s.logSteps {
		s.log.Log(context.Background(), LevelTrace, "step",
			"conn", uint64(c.m.Config().ID), "state", before.String(), "event", eventName(ev), "next", c.m.State().String())
	}
	return acts
}

// awaitGone polls the holder's socket, without the lock, until it shows
// its end or the probe grace has passed, and reports whether it ended. An
// Erlang node (OTP 25) that stops and restarts distribution closes its old
// registration socket asynchronously, when the VM gets round to closing
// the dead erl_epmd process's port, and that can come a moment after the
// new ALIVE2: with a peek alone about 1 restart in 400 was still refused.
// Only an ALIVE2 for a name that is held waits, and only its own goroutine.
// Each look is made under s.mu, at the holder as s.conns has it then: one
// that was closed meanwhile is gone.
//
// It wakes as soon as the holder is forgotten (its own end was handled, a
// STOP closed it), without waiting for its next look: a node's close can
// reach the daemon a moment after its new ALIVE2 when the machine is busy,
// and the looks are up to 16 ms apart.
func (s *Server) awaitGone(holder registry.ConnID) bool {
	start := time.Now()
	ended := make(chan struct{})
	s.mu.Lock()
	if s.conns[holder] == nil {
		s.mu.Unlock()
		return true
	}
	if s.ended == nil {
		s.ended = make(map[registry.ConnID][]chan struct{})
	}
	s.ended[holder] = append(s.ended[holder], ended)
	s.mu.Unlock()
	defer s.stopAwaiting(holder, ended)
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
		case <-ended:
			s.log.Debug("holder of a requested name went away", "waited", time.Since(start))
			return true
		case <-s.done:
			return false
		}
		s.mu.Lock()
		h := s.conns[holder]
		gone := h == nil || h.gone()
		s.mu.Unlock()
		if gone {
			s.log.Debug("holder of a requested name went away", "waited", time.Since(start))
			return true
		}
		pause = min(2*pause, maxProbePause)
	}
}

// forgetLocked removes a connection from the table and wakes the ALIVE2
// requests waiting for it to go. The caller holds s.mu and closes the
// socket.
func (s *Server) forgetLocked(id registry.ConnID) {
	delete(s.conns, id)
	for _, ch := range s.ended[id] {
		close(ch)
	}
	delete(s.ended, id)
}

// stopAwaiting withdraws a wait of awaitGone that ended otherwise.
func (s *Server) stopAwaiting(holder registry.ConnID, ended chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting := slices.DeleteFunc(s.ended[holder], func(ch chan struct{}) bool { return ch == ended })
	if len(waiting) == 0 {
		delete(s.ended, holder)
	} else {
		s.ended[holder] = waiting
	}
}

// write sends one reply in one write.
func (s *Server) write(c *conn, r wire.Response) error {
	b, err := s.encode(r)
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

// namesCache is an encoded NAMES reply and the entries it was made from.
type namesCache struct {
	port  uint32
	nodes []wire.NameEntry
	b     []byte
}

// encode returns a reply's bytes. A NAMES reply is encoded once for as
// long as the registry does not change: registry.Names returns the same
// slice until then, and a new one after, so the slice says whether the
// cached bytes still hold. The bytes are never written to after.
func (s *Server) encode(r wire.Response) ([]byte, error) {
	nr, ok := r.(*wire.NamesResp)
	if !ok {
		return r.AppendBinary(nil)
	}
	if nc := s.names.Load(); nc != nil && nc.port == nr.Port && sameSlice(nc.nodes, nr.Nodes) {
		return nc.b, nil
	}
	b, err := nr.AppendBinary(nil)
	if err == nil {
		s.names.Store(&namesCache{port: nr.Port, nodes: nr.Nodes, b: b})
	}
	return b, err
}

// sameSlice reports whether a and b are the same slice: same length, same
// first element in memory.
func sameSlice(a, b []wire.NameEntry) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// closeConn forgets a goroutine-served connection and closes it.
func (s *Server) closeConn(c *conn, cl fsm.Close) {
	id := c.m.Config().ID
	s.mu.Lock()
	s.forgetLocked(id)
	s.mu.Unlock()
	c.closeSocket()
	s.logClose(id, cl)
}

// logClose logs a close: stock epmd's own message, alone, when it has one
// (refusals and protocol errors show without -d, as stock's level-0
// messages do); otherwise a debug line.
func (s *Server) logClose(id registry.ConnID, cl fsm.Close) {
	if cl.Detail != "" {
		s.log.Info(cl.Detail)
	}
	if s.logConns {
		s.log.Log(context.Background(), LevelConn, "connection closed", "conn", uint64(id), "reason", cl.Reason)
	}
}

// beginShutdown stops accepting, closes every connection (registered nodes
// see their socket close) and closes Done.
//
// Raw sockets are closed under the lock, as their ownership rule wants;
// then the event loop is stopped (it closes its listeners' descriptors and
// the connections still on their way), and the listeners and the
// goroutine-served connections are closed, without the lock.
//
// It must not be called from the event loop's goroutine, which it waits
// for.
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
	var conns []*conn
	for id, c := range s.conns {
		if c.nc != nil {
			conns = append(conns, c)
			continue
		}
		s.forgetLocked(id)
		c.closeSocket()
	}
	s.mu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
	if why == killMessage {
		s.log.Info(why)
	} else {
		s.log.Debug("shutting down", "reason", why)
	}
	if s.loop != nil {
		s.loop.stop()
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, c := range conns {
		c.nc.Close()
	}
	close(s.stopped)
}

// Shutdown closes the listeners and every connection, then waits for the
// connection goroutines to finish or ctx to expire. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown("shutdown")
	// A KILL may have begun the shutdown in another goroutine: once it
	// has stopped the event loop, nothing starts a connection goroutine.
	select {
	case <-s.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
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
