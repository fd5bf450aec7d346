// Package server is the I/O shell of the daemon: it accepts connections,
// frames requests, feeds the per-connection state machine (package fsm) and
// carries out the actions it returns. Every protocol decision is fsm's; the
// server decides only how bytes move.
//
// One goroutine, the owner, holds every piece of mutable protocol state:
// the registry, the table of connections and their state machines, the
// encoded NAMES reply, the ALIVE2 requests waiting for the holder of their
// name. Everything else (socket readiness, timers, finished writes,
// Shutdown, Snapshot) reaches that state as an event the owner handles; no
// mutex guards it. One function, exec, carries out fsm's actions. The
// owner's sockets are behind a seam with two backends: on Linux, an event
// loop of raw system calls on one epoll set, run by the owner itself; on
// every system, the Go net package, a goroutine per connection posting
// events to the owner. docs/design.md draws both.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

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

// Backends: where the owner's sockets come from.
const (
	// BackendEpoll serves every socket with raw system calls from the
	// owner goroutine, waiting in one epoll set. Linux only; the default
	// there.
	BackendEpoll = "epoll"
	// BackendPortable serves each connection with a goroutine of its own
	// through the net package. The default on every other system.
	BackendPortable = "portable"
)

// BackendEnv names the environment variable that chooses the backend when
// Config.Backend is empty: "portable" or "epoll".
const BackendEnv = "GOPMD_BACKEND"

// Config holds the daemon's options.
type Config struct {
	// Port is the configured port, reported in the 4-byte header of NAMES
	// and DUMP replies whatever socket the request came in on.
	Port uint32
	// Relaxed allows KILL while nodes are registered, and STOP at all.
	Relaxed bool
	// MaxRemembered caps the unregistered names whose creation counter
	// the registry remembers; zero means registry.MaxRemembered. Stock
	// epmd's -d shrinks it to registry.DebugMaxRemembered.
	MaxRemembered int
	// Debug is the -d level. Deprecated: it sets MaxRemembered to
	// registry.DebugMaxRemembered when that is zero and Debug above 0,
	// and nothing else; set MaxRemembered.
	Debug int
	// PacketTimeout limits how long a request may take to arrive, counted
	// from accept and not refreshed by each byte (docs/differences.md #1),
	// and how long a reply may take to leave. Registered connections have
	// no timeout. Zero means the default.
	PacketTimeout time.Duration
	// ProbeGrace is how long an ALIVE2 for a registered name waits for
	// the holder's socket to show that its peer closed it before the
	// newcomer is refused as a duplicate (erlang/otp#11083). A live
	// duplicate is refused after this delay. Zero means
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
	// Backend chooses how sockets are served: BackendEpoll or
	// BackendPortable. Empty means the value of $GOPMD_BACKEND if set,
	// else the system's default (epoll on Linux, portable elsewhere).
	Backend string
}

// Server is a running epmd.
type Server struct {
	cfg Config
	log *slog.Logger
	// logConns and logSteps say whether the logger takes the -d -d and
	// -d -d -d levels, asked once rather than for every connection.
	logConns, logSteps bool
	be                 backend
	faults             *faults // injected at the seam by tests; nil otherwise

	// The inbox: events posted from other goroutines, run by the owner.
	// inMu guards the queue alone, never protocol state.
	inMu     sync.Mutex
	inbox    []func()
	inClosed bool

	o owner // the owner goroutine's own

	done   chan struct{}  // closed when shutdown begins
	exited chan struct{}  // closed when the owner goroutine has returned
	wg     sync.WaitGroup // the backend's goroutines
}

// New returns a server with an empty registry, its owner goroutine
// running. It panics on an unknown Config.Backend; NewErr returns that
// error instead.
func New(cfg Config) *Server {
	s, err := NewErr(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// NewErr is New, returning an error when the backend asked for does not
// exist on this system or cannot start.
func NewErr(cfg Config) (*Server, error) { return newServer(cfg, nil) }

func newServer(cfg Config, f *faults) (*Server, error) {
	if cfg.PacketTimeout <= 0 {
		cfg.PacketTimeout = DefaultPacketTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProbeGrace == 0 {
		cfg.ProbeGrace = DefaultProbeGrace
	}
	if cfg.Backend == "" {
		cfg.Backend = os.Getenv(BackendEnv)
	}
	if cfg.Backend == "" {
		cfg.Backend = defaultBackend
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRemembered <= 0 {
		cfg.MaxRemembered = registry.MaxRemembered
		if cfg.Debug > 0 {
			cfg.MaxRemembered = registry.DebugMaxRemembered
		}
	}
	s := &Server{
		cfg:      cfg,
		log:      log,
		logConns: log.Enabled(context.Background(), LevelConn),
		logSteps: log.Enabled(context.Background(), LevelTrace),
		faults:   f,
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	s.o = owner{
		reg:     registry.New(cfg.MaxRemembered),
		conns:   make(map[registry.ConnID]*conn),
		machine: fsm.New(fsm.Config{}),
	}
	var err error
	switch cfg.Backend {
	case BackendPortable:
		s.be = newPortable(s)
	case BackendEpoll:
		s.be, err = newEpoll(s)
	default:
		err = errors.New("server: unknown backend " + cfg.Backend + " (want " + BackendEpoll + " or " + BackendPortable + ")")
	}
	if err != nil {
		return nil, err
	}
	go s.own()
	return s, nil
}

// own is the owner goroutine.
func (s *Server) own() {
	s.o.g.set()
	s.be.run()
	s.inMu.Lock()
	s.inClosed = true
	s.inMu.Unlock()
	s.be.exit()
	close(s.exited)
}

// post queues f for the owner goroutine. It reports false, having done
// nothing, once the owner has returned.
func (s *Server) post(f func()) bool {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.inClosed {
		return false
	}
	s.inbox = append(s.inbox, f)
	// Under inMu: the owner closes the backend's wake-up descriptor only
	// after closing the inbox, so it is never poked once closed.
	if len(s.inbox) == 1 {
		s.be.wake()
	}
	return true
}

// drain runs the posted events. Owner only.
func (s *Server) drain() {
	s.o.g.check()
	s.inMu.Lock()
	q := s.inbox
	s.inbox = nil
	s.inMu.Unlock()
	for i, f := range q {
		f()
		q[i] = nil
	}
}

// query runs f on the owner and waits for it; once the owner has
// returned, the state is frozen and f runs here.
func (s *Server) query(f func()) {
	ran := make(chan struct{})
	if s.post(func() { f(); close(ran) }) {
		select {
		case <-ran:
			return
		case <-s.exited:
			select {
			case <-ran:
				return
			default:
			}
		}
	}
	<-s.exited
	f()
}

// Done is closed when the server begins shutting down, after a KILL
// request or a call to Shutdown.
func (s *Server) Done() <-chan struct{} { return s.done }

// Serve accepts connections on ln until the server shuts down or ln fails
// for good. It returns nil after a shutdown. Serve may be called once per
// listener, concurrently. The epoll backend needs a listener with a
// descriptor (a *net.TCPListener, say) and takes it over: ln is closed,
// the backend accepts on a duplicate of its socket.
func (s *Server) Serve(ln net.Listener) error {
	res := make(chan error, 1)
	if !s.post(func() {
		if s.o.stopping {
			ln.Close()
			res <- nil
			return
		}
		if err := s.be.listen(ln, func(err error) {
			if !s.o.stopping {
				s.log.Error("listener failed", "addr", ln.Addr().String(), "err", err)
			}
			res <- err
		}); err != nil {
			res <- err
		}
	}) {
		ln.Close()
		return nil
	}
	select {
	case err := <-res:
		select {
		case <-s.done:
			return nil
		default:
			return err
		}
	case <-s.done:
		return nil
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

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minAcceptBackoff
	}
	return min(2*d, maxAcceptBackoff)
}

// Shutdown closes the listeners and every connection, then waits for the
// owner and the backend's goroutines to finish or ctx to expire. It is
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.post(func() { s.shutdown("shutting down: Shutdown", slog.LevelDebug) })
	select {
	case <-s.exited:
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
	s.query(func() { live, remembered = s.o.reg.Live(), s.o.reg.Remembered() })
	return live, remembered
}

// NumConns returns the number of connections the owner holds: kept
// sockets, and connections whose reply or probe is under way.
func (s *Server) NumConns() int {
	var n int
	s.query(func() { n = len(s.o.conns) })
	return n
}

// Backend returns the backend serving the sockets: BackendEpoll or
// BackendPortable.
func (s *Server) Backend() string { return s.cfg.Backend }

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

// decodeRequest decodes a complete request's body into its event.
func decodeRequest(body []byte) (wire.Request, fsm.Event) {
	req, err := wire.DecodeRequest(body)
	if err != nil {
		return nil, fsm.Malformed{Err: err}
	}
	return req, nil
}
