// Package fsm is the per-connection protocol of epmd as a pure state
// machine. The server feeds it events (a decoded request, a framing error,
// the peer closing, a timeout, a failed write) and carries out the actions
// it returns, in order. Every decision stock epmd makes about what to send,
// what to register and when to close lives here; the server only does I/O.
//
// fsm never reads a clock, never does I/O and never blocks: the current time
// arrives inside events, the peer's locality and the daemon's options at
// connection start. Given the same events, it always returns the same
// actions, so any daemon behaviour can be replayed from a log of events.
//
//	             accept
//	               |
//	               v
//	      +-----------------+  NAMES, PORT2, DUMP, KILL, STOP,
//	      | AwaitingRequest |  malformed, refused, timeout, EOF
//	      +-----------------+ ---------------------------------> Closed
//	        |             |
//	ALIVE2  |             | ALIVE2 refused (reply result 1)
//	ok      v             v
//	+------------+   +---------+
//	| Registered |   | Refused |   no timeout in either
//	+------------+   +---------+
//	        |             |
//	        | any byte, EOF, error, or a write failure
//	        v             v
//	            Closed (absorbing)
package fsm

import (
	"errors"
	"strconv"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// State is a connection's protocol state.
type State uint8

const (
	// AwaitingRequest: nothing executed yet; the connection is subject to
	// the packet timeout.
	AwaitingRequest State = iota
	// Registered: ALIVE2 accepted and answered; the socket now holds the
	// registration and has no timeout. Any input ends it.
	Registered
	// Refused: ALIVE2 answered with result 1 (duplicate name, bad name,
	// extra too long). Stock epmd keeps such a socket open, without
	// timeout, until the peer closes it or sends anything; so do we.
	Refused
	// Closed: absorbing; every later event yields no action, but for a
	// WriteFailed of the reply planned with the close: that turns the
	// close the server has not made yet into a reset (once).
	Closed
)

var stateNames = [...]string{"AwaitingRequest", "Registered", "Refused", "Closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Config is what a connection knows from the start.
type Config struct {
	ID      registry.ConnID // this connection, owner of its registration
	Fd      int             // its file descriptor, shown by DUMP
	Local   bool            // the peer passed the local-peer check at accept
	Relaxed bool            // -relaxed_command_check or its variable
	Port    uint32          // configured port, sent in NAMES and DUMP headers
	// ProbeGrace is how long, in milliseconds of OwnerProbed.At, an
	// ALIVE2 for a held name waits for its holder to show its end before
	// it is refused as a duplicate (erlang/otp#11083); 0 means one look.
	ProbeGrace int64
}

// Event is an input to Step, made by the server.
type Event interface{ isEvent() }

// Received is one complete, decoded request. Now is the Unix time in
// seconds, used for the creation of a new name.
type Received struct {
	Req wire.Request
	Now int64
}

// Malformed is a request that could not be framed or decoded.
type Malformed struct{ Err error }

// Data is any byte arriving on a connection whose request was already
// executed (a registered or refused ALIVE2 socket).
type Data struct{}

// PeerClosed is end of stream or a read error. Buffered counts the bytes
// of an incomplete request received before it (length header included).
type PeerClosed struct {
	Err      error
	Buffered int
}

// Timeout is the packet timeout expiring before a request was complete.
type Timeout struct{}

// WriteFailed is a reply that could not be written.
type WriteFailed struct{ Err error }

// OwnerProbed answers ProbeOwner: Gone reports that the probed connection's
// peer has already closed it, reset it or sent data on it, so its
// registration is ending and only waits for the server to notice. At is
// when the server looked, in milliseconds on a clock of its choice (the
// same for every look of one probe): the probe's grace counts from the
// first look's At.
type OwnerProbed struct {
	Gone bool
	At   int64
}

func (Received) isEvent()    {}
func (Malformed) isEvent()   {}
func (Data) isEvent()        {}
func (PeerClosed) isEvent()  {}
func (Timeout) isEvent()     {}
func (WriteFailed) isEvent() {}
func (OwnerProbed) isEvent() {}

// Action is an output of Step, carried out by the server in order.
type Action interface{ isAction() }

// Send asks the server to encode Resp and write it in one write.
type Send struct{ Resp wire.Response }

// Close asks the server to close this connection. It is always the last
// action. Reason is a stable token for logs ("done" after a normal reply);
// Detail, when set, is the message stock epmd logs even without -d for
// the same close, word for word ("got garbage ", "invalid packet size (0)").
// Reset asks for an abortive close (a TCP reset) rather than an orderly
// one: after a reply that could not be written in full, so that the
// client sees an error rather than a reply that merely looks short (NAMES
// and DUMP end at the close).
type Close struct {
	Reason, Detail string
	Reset          bool
}

// CloseConn asks the server to close another connection: the one that held
// a registration removed by STOP.
type CloseConn struct{ ID registry.ConnID }

// Shutdown asks the server to stop the daemon after this connection's
// reply (KILL): close every connection and listener and exit 0.
type Shutdown struct{}

// RegisteredNode reports a registration, for the log.
type RegisteredNode struct {
	Node     wire.Node
	Creation uint32
}

// UnregisteredNode reports a registration removed, for the log.
type UnregisteredNode struct{ Name string }

// ProbeOwner asks the server whether the connection holding a name that an
// ALIVE2 asks for is already gone (its peer closed or reset it, or sent
// data on it), and to answer with OwnerProbed before anything else happens
// to this connection. The first question is answered at once; when the
// answer is "not gone" and the grace (Config.ProbeGrace) has not passed
// since the first look, the machine asks again, and the server answers
// after a pause, or as soon as the holder is gone; meanwhile other
// connections may step, and the answer is checked against the registry as
// it is then. ProbeOwner is always the only action of its step.
type ProbeOwner struct{ ID registry.ConnID }

// Refusal reports a request refused with a reply rather than a close
// (ALIVE2 result 1, KILL "NO"), for the log. Detail is stock epmd's message.
type Refusal struct{ Reason, Detail string }

func (Send) isAction()             {}
func (Close) isAction()            {}
func (CloseConn) isAction()        {}
func (Shutdown) isAction()         {}
func (RegisteredNode) isAction()   {}
func (UnregisteredNode) isAction() {}
func (Refusal) isAction()          {}
func (ProbeOwner) isAction()       {}

// Close reasons. Each is a stable token the server logs.
const (
	ReasonDone          = "done"           // request answered
	ReasonMalformed     = "malformed"      // framing or decoding failed
	ReasonNotLocal      = "not_local"      // local-only request from a remote peer
	ReasonNotRelaxed    = "not_relaxed"    // STOP without relaxed command check
	ReasonBadLookupName = "bad_name"       // PORT_PLEASE2 name failed validation
	ReasonPeerClosed    = "peer_closed"    // EOF or read error
	ReasonData          = "data"           // bytes on a kept ALIVE2 socket
	ReasonTimeout       = "timeout"        // request incomplete at packet timeout
	ReasonWriteFailed   = "write_failed"   // reply could not be written
	ReasonDuplicate     = "duplicate_name" // Refusal: name already registered
	ReasonKillRefused   = "kill_refused"   // Refusal: nodes still registered
)

// errBadEvent is the panic value for an event type Step does not know.
var errBadEvent = errors.New("fsm: unknown event")

// Conn is one connection's protocol state.
type Conn struct {
	cfg   Config
	state State
	name  string // the registered name while in Registered

	// An ALIVE2 waiting for OwnerProbed, with its owner and time.
	pending *pendingAlive2

	// replied says that the step that closed the connection planned a
	// reply (and killed, a shutdown): a WriteFailed for that reply
	// replaces its planned close with a reset, once.
	replied, killed bool

	// A look-up's reply and actions live here, made at the first look-up
	// and kept by Reset, so that a look-up on a Conn that is Reset and
	// used again allocates nothing.
	lookup *lookupStore
}

// pendingAlive2 is an ALIVE2 waiting for OwnerProbed: the request, the
// name's holder, the time of the request, and the end of the probe's
// grace, from the first look's At.
type pendingAlive2 struct {
	req    *wire.Alive2Req
	owner  registry.ConnID
	now    int64
	until  int64
	looked bool
}

// lookupStore holds a PORT_PLEASE2 reply and the actions that carry it.
type lookupStore struct {
	resp wire.Port2Resp
	send Action // Send{&resp}, boxed once
	acts [2]Action
}

// OneShot reports whether a request's connection is closed once it is
// answered, whatever the answer: every request but ALIVE2, whose socket
// stays open after its reply. A server may serve one-shot requests on a
// path that cannot keep a connection.
func OneShot(req wire.Request) bool {
	_, keeps := req.(*wire.Alive2Req)
	return !keeps
}

// New returns a connection in AwaitingRequest.
func New(cfg Config) *Conn { return &Conn{cfg: cfg} }

// Reset makes c a new connection in AwaitingRequest, as New(cfg) would,
// reusing its memory. The actions (and their replies) that c returned
// before must not be used afterwards: a server resets a Conn only once it
// has carried out all of them.
func (c *Conn) Reset(cfg Config) {
	*c = Conn{cfg: cfg, lookup: c.lookup}
}

// State returns the current state.
func (c *Conn) State() State { return c.state }

// Name returns the name this connection holds in the registry, if any.
// After a STOP of that name it still returns it until the connection
// closes; the registry, not the connection, is the authority.
func (c *Conn) Name() (string, bool) { return c.name, c.state == Registered }

// Config returns the configuration the connection was made with.
func (c *Conn) Config() Config { return c.cfg }

// Step applies ev and returns what the server must do. It never fails:
// peer misbehaviour is an ordinary transition. Step panics only on an
// event type it does not know, which is a programming error.
func (c *Conn) Step(reg *registry.Registry, ev Event) []Action {
	switch c.state {
	case AwaitingRequest:
		return c.stepAwaiting(reg, ev)
	case Registered, Refused:
		return c.stepKept(reg, ev)
	default:
		if !isKnown(ev) {
			panic(errBadEvent)
		}
		if _, ok := ev.(WriteFailed); ok && c.replied {
			// The reply planned with the close failed: the server has
			// not closed yet, and resets instead.
			c.replied = false
			acts := []Action{Close{Reason: ReasonWriteFailed, Reset: true}}
			if c.killed {
				acts = append([]Action{Shutdown{}}, acts...)
			}
			return acts
		}
		return nil
	}
}

// StepRequest is Step(reg, Received{Req: req, Now: now}) without making
// the event an interface value, which would allocate: the server's path
// for a request that arrived whole.
func (c *Conn) StepRequest(reg *registry.Registry, req wire.Request, now int64) []Action {
	ev := Received{Req: req, Now: now}
	if c.state != AwaitingRequest {
		return c.Step(reg, ev)
	}
	c.pending = nil // as stepAwaiting does for any event but OwnerProbed
	return c.execute(reg, ev)
}

func isKnown(ev Event) bool {

	switch ev.(type) {
	case Received, Malformed, Data, PeerClosed, Timeout, WriteFailed, OwnerProbed:
		return true
	}
	return false
}

func (c *Conn) stepAwaiting(reg *registry.Registry, ev Event) []Action {
	if p, ok := ev.(OwnerProbed); ok {
		return c.probed(reg, p)
	}
	// Anything else abandons a pending probe: the server answers
	// ProbeOwner before any other event, so this happens only if it did
	// not.
	c.pending = nil
	switch ev := ev.(type) {
	case Received:
		return c.execute(reg, ev)
	case Malformed:
		return c.malformed(ev.Err)
	case Data:
		// The server reads requests through the framer until one is
		// executed; raw data before that is a framing matter.
		return c.becomeClosed(nil, ReasonMalformed)
	case PeerClosed:
		return c.closeWith(nil, ReasonPeerClosed, "got partial packet only on file descriptor "+
			strconv.Itoa(c.cfg.Fd)+" ("+strconv.Itoa(ev.Buffered)+")")
	case Timeout:
		return c.becomeClosed(nil, ReasonTimeout)
	case WriteFailed:
		c.state = Closed
		return []Action{Close{Reason: ReasonWriteFailed, Reset: true}}
	}
	panic(errBadEvent)
}

// stepKept handles a socket kept open after an ALIVE2 reply. Stock epmd
// ends it on any readable event: EOF, an error, or any byte at all (a
// second request is not allowed on a registration socket). It has no
// timeout, so Timeout is ignored.
func (c *Conn) stepKept(reg *registry.Registry, ev Event) []Action {
	var reason string
	switch ev.(type) {
	case Timeout, OwnerProbed:
		return nil
	case Received, Data:
		reason = ReasonData
	case Malformed:
		reason = ReasonMalformed
	case PeerClosed:
		reason = ReasonPeerClosed
	case WriteFailed:
		reason = ReasonWriteFailed
	default:
		panic(errBadEvent)
	}
	var acts []Action
	if c.state == Registered && reg.Unregister(c.name, c.cfg.ID) {
		acts = append(acts, UnregisteredNode{Name: c.name})
	}
	if reason == ReasonWriteFailed {
		c.state = Closed
		return append(acts, Close{Reason: reason, Reset: true})
	}
	return c.becomeClosed(acts, reason)
}

func (c *Conn) becomeClosed(acts []Action, reason string) []Action {
	return c.closeWith(acts, reason, "")
}

// closeWith closes with stock epmd's log message for the close.
func (c *Conn) closeWith(acts []Action, reason, detail string) []Action {
	c.state = Closed
	for _, a := range acts {
		switch a.(type) {
		case Send:
			c.replied = true
		case Shutdown:
			c.killed = true
		}
	}
	if detail == "" && reason == ReasonDone {
		return append(acts, closeDone) // boxed once, not per request
	}
	return append(acts, Close{Reason: reason, Detail: detail})
}

// closeDone is the Close that ends every answered one-shot request.
var closeDone Action = Close{Reason: ReasonDone}

// notLocal refuses a local-only request from a remote peer.
func (c *Conn) notLocal(t wire.Tag) []Action {
	return c.closeWith(nil, ReasonNotLocal, stockName(t)+" from non local address")
}

// stockName is the request's name in stock epmd's messages, as OTP 29
// writes them: DUMP, KILL and STOP with the EPMD_ prefix, ALIVE2 and PORT2
// without (OTP 25 and 27 write every name without it; docs/epmd.md).
func stockName(t wire.Tag) string {
	switch t {
	case wire.TagPortPlease2Req:
		return "PORT2_REQ"
	case wire.TagDumpReq:
		return "EPMD_DUMP_REQ"
	case wire.TagKillReq:
		return "EPMD_KILL_REQ"
	case wire.TagStopReq:
		return "EPMD_STOP_REQ"
	}
	return "ALIVE2_REQ"
}

// malformed closes a connection whose request could not be framed or
// decoded. The checks stock epmd makes before decoding come first, so a
// malformed ALIVE2 from a remote peer, or a short STOP to a strict daemon,
// is refused for that reason, as stock does; the message then says what
// stock says about the request itself.
func (c *Conn) malformed(err error) []Action {
	var fe *wire.FrameError
	if errors.As(err, &fe) {
		if errors.Is(err, wire.ErrTrailingData) {
			return c.closeWith(nil, ReasonMalformed, "got "+strconv.Itoa(fe.Got)+" bytes in packet, expected "+strconv.Itoa(fe.Length))
		}
		return c.closeWith(nil, ReasonMalformed, "invalid packet size ("+strconv.Itoa(fe.Length)+")")
	}
	var de *wire.DecodeError
	if !errors.As(err, &de) || de.Request() == 0 {
		return c.closeWith(nil, ReasonMalformed, "got garbage ")
	}
	t := de.Request()
	switch {
	case (t == wire.TagAlive2Req || t == wire.TagStopReq) && !c.cfg.Local:
		return c.notLocal(t)
	case t == wire.TagStopReq && !c.cfg.Relaxed:
		return c.closeWith(nil, ReasonNotRelaxed, "Disallowed EPMD_STOP_REQ, no relaxed_command_check")
	}
	var detail string
	switch {
	case t == wire.TagAlive2Req && de.Kind == wire.KindShort:
		detail = "packet to small for request ALIVE2_REQ (" + strconv.Itoa(de.Offset) + ")" // sic
	case t == wire.TagAlive2Req && de.Kind == wire.KindNameLength:
		detail = "Node name size error in ALIVE2_REQ"
	case t == wire.TagAlive2Req && de.Kind == wire.KindExtraLength:
		detail = "Extra info size error in ALIVE2_REQ"
	case errors.Is(err, wire.ErrInvalid):
		detail = "node name contains ascii 0 in " + stockName(t)
	default:
		// An empty PORT_PLEASE2 or STOP name: the payload is the tag only.
		detail = "packet too small for request " + stockName(t) + " (1)"
	}
	return c.closeWith(nil, ReasonMalformed, detail)
}

func (c *Conn) becomeRegistered(name string) {
	if c.state != AwaitingRequest {
		panic("fsm: register from " + c.state.String())
	}
	c.state, c.name = Registered, name
}

func (c *Conn) becomeRefused() {
	if c.state != AwaitingRequest {
		panic("fsm: refuse from " + c.state.String())
	}
	c.state = Refused
}

// execute runs one request, as stock epmd's do_request does.
func (c *Conn) execute(reg *registry.Registry, ev Received) []Action {
	switch req := ev.Req.(type) {
	case *wire.Alive2Req:
		return c.alive2(reg, req, ev.Now)
	case *wire.PortPlease2Req:
		if err := wire.CheckLookupName(req.Name); err != nil {
			return c.closeWith(nil, ReasonBadLookupName, "invalid node name in PORT2_REQ")
		}
		// The reply and the actions live in c (see Reset): a look-up
		// allocates nothing.
		if c.lookup == nil {
			c.lookup = new(lookupStore)
		}
		l := c.lookup
		l.resp = wire.Port2Resp{Result: 1}
		if n, ok := reg.Lookup(req.Name); ok {
			l.resp = wire.Port2Resp{Node: n}
		}
		if l.send == nil {
			l.send = Send{&l.resp}
		}
		return c.becomeClosed(append(l.acts[:0], l.send), ReasonDone)

	case *wire.NamesReq:
		// The server writes the reply after releasing the registry, so
		// the reply must not share memory the registry changes later:
		// Names returns a read-only slice that never changes.
		resp := &wire.NamesResp{Port: c.cfg.Port, Nodes: reg.Names()}
		return c.becomeClosed([]Action{Send{resp}}, ReasonDone)
	case *wire.DumpReq:
		if !c.cfg.Local {
			return c.notLocal(wire.TagDumpReq)
		}
		active, old := reg.Dump()
		resp := &wire.DumpResp{Port: c.cfg.Port, Active: active, Old: old}
		return c.becomeClosed([]Action{Send{resp}}, ReasonDone)
	case *wire.KillReq:
		if !c.cfg.Local {
			return c.notLocal(wire.TagKillReq)
		}
		if !c.cfg.Relaxed && reg.Len() > 0 {
			return c.becomeClosed([]Action{
				Refusal{Reason: ReasonKillRefused, Detail: "Disallowed EPMD_KILL_REQ, live nodes"},
				Send{&wire.KillResp{OK: false}},
			}, ReasonDone)
		}
		return c.becomeClosed([]Action{Send{&wire.KillResp{OK: true}}, Shutdown{}}, ReasonDone)
	case *wire.StopReq:
		// Stock checks the relaxed flag before anything else about STOP;
		// both refusals are a silent close.
		if !c.cfg.Local {
			return c.notLocal(wire.TagStopReq)
		}
		if !c.cfg.Relaxed {
			return c.closeWith(nil, ReasonNotRelaxed, "Disallowed EPMD_STOP_REQ, no relaxed_command_check")
		}
		owner, ok := reg.Stop(req.Name)
		if !ok {
			return c.becomeClosed([]Action{Send{&wire.StopResp{Stopped: false}}}, ReasonDone)
		}
		// The owner is always another connection: this one has executed
		// no request before, so it cannot hold a registration.
		return c.becomeClosed([]Action{
			UnregisteredNode{Name: req.Name},
			CloseConn{ID: owner},
			Send{&wire.StopResp{Stopped: true}},
		}, ReasonDone)
	}
	panic("fsm: unknown request tag " + ev.Req.Tag().String())
}

// alive2 registers a node. Checks in stock order: locality (silent close),
// then content (name length, encoding, characters, extra length) and the
// duplicate check, whose failures are answered with result 1 and creation
// 99 and leave the socket open. The reply's form depends only on the
// request's HighestVersion: 6 or more gets ALIVE2_X_RESP.
func (c *Conn) alive2(reg *registry.Registry, req *wire.Alive2Req, now int64) []Action {
	if !c.cfg.Local {
		return c.notLocal(wire.TagAlive2Req)
	}
	if err := wire.CheckAlive2(&req.Node); err != nil {
		var ve *wire.ValidationError
		errors.As(err, &ve)
		c.becomeRefused()
		return []Action{Refusal{Reason: ve.Reason, Detail: ve.Detail}, Send{alive2Reply(req.High, 1, wire.ErrorCreation)}}
	}
	if owner, taken := reg.Owner(req.Name); taken {
		// Before refusing a duplicate, find out whether its holder is
		// already gone: a node restarting quickly reconnects before the
		// daemon has seen the FIN of its previous registration
		// (erlang/otp#11083). Stock epmd refuses it; see
		// docs/differences.md.
		c.pending = &pendingAlive2{req: req, owner: owner, now: now}
		return []Action{ProbeOwner{ID: owner}}
	}
	return c.register(reg, req, now)
}

// probed finishes an ALIVE2 that waited for ProbeOwner. A holder that is
// gone loses its registration (and its socket is closed, as it would be
// once the server noticed); a live holder makes this a duplicate.
func (c *Conn) probed(reg *registry.Registry, p OwnerProbed) []Action {
	pa := c.pending
	if pa == nil {
		return nil // an answer to no question
	}
	req, owner, now := pa.req, pa.owner, pa.now
	if !p.Gone && c.cfg.ProbeGrace > 0 {
		if !pa.looked {
			pa.until, pa.looked = p.At+c.cfg.ProbeGrace, true
		}
		if p.At < pa.until {
			// The holder still looks alive; it may yet show its end
			// (a restarting node's VM closes its old socket late).
			return []Action{ProbeOwner{ID: owner}}
		}
	}
	c.pending = nil
	var acts []Action
	if p.Gone && reg.Unregister(req.Name, owner) {
		acts = append(acts, UnregisteredNode{Name: req.Name}, CloseConn{ID: owner})
	}
	return append(acts, c.register(reg, req, now)...)
}

// register makes the registration, or refuses it as a duplicate.
func (c *Conn) register(reg *registry.Registry, req *wire.Alive2Req, now int64) []Action {
	counter, ok := reg.Register(req.Node, c.cfg.ID, c.cfg.Fd, now)
	if !ok {
		c.becomeRefused()
		return []Action{
			Refusal{Reason: ReasonDuplicate, Detail: "node name already occupied " + req.Name},
			Send{alive2Reply(req.High, 1, wire.ErrorCreation)},
		}
	}
	c.becomeRegistered(req.Name)
	return []Action{RegisteredNode{Node: req.Node, Creation: counter}, Send{alive2Reply(req.High, 0, counter)}}
}

// alive2Reply builds the reply form the request's HighestVersion selects.
// Old-protocol nodes get a 2-bit creation, counter % 3 + 1; errors carry 99.
func alive2Reply(high uint16, result uint8, counter uint32) wire.Response {
	if high >= 6 {
		return &wire.Alive2XResp{Result: result, Creation: counter}
	}
	if result != 0 {
		return &wire.Alive2Resp{Result: result, Creation: uint16(counter)}
	}
	return &wire.Alive2Resp{Result: result, Creation: uint16(counter%3 + 1)}
}

// Clone returns a copy of c that steps on its own: a server that serves
// connections on one Conn, Reset for each, moves a connection that must
// outlive its first step (a kept socket, a reply that waits for its
// socket) to a Conn of its own.
func (c *Conn) Clone() *Conn {
	cp := *c
	cp.lookup = nil // the look-up store stays with the Conn that is Reset
	return &cp
}
