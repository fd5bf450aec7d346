package server

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// owner is the protocol state, touched only by the owner goroutine (g
// checks it in tests). A snapshot of the daemon is this struct's registry
// and table, with each kept connection's socket.
type owner struct {
	g        goroutineLock
	reg      *registry.Registry
	conns    map[registry.ConnID]*conn // kept, writing or probing connections
	nextID   registry.ConnID
	stopping bool
	frozen   bool // handing over: not accepting, kept sockets not watched (handover.go)
	kill     bool // a KILL asked for a shutdown once its actions are done

	// probing lists the connections whose ALIVE2 waits for the holder of
	// its name to go (see probe).
	probing []*conn

	// A connection's first step runs on machine, Reset for each, in the
	// scratch conn one: a look-up allocates neither. A connection that
	// outlives its first step is moved to a conn and machine of its own
	// (persist).
	machine *fsm.Conn
	one     conn

	// rep holds the encoded NAMES and DUMP replies, shared by the
	// connections sending them, the encodings under way, and the pending
	// output (replies.go).
	rep replies
}

// conn is one connection: its state machine and its socket, as the
// backend gave it.
type conn struct {
	id registry.ConnID
	m  *fsm.Conn
	fd int    // its descriptor: the epoll backend's socket, DUMP's fd
	ps *psock // the portable backend's connection; nil with epoll

	persisted bool // in the owner's table, on a conn of its own
	closed    bool
	kept      bool // its actions ended without a Close: a kept socket

	// The epoll backend's registration: watched says the descriptor is in
	// the set under its ConnID; inSet that it still is under the pending
	// key it waited with, which no longer leads anywhere.
	watched, inSet bool

	w     *reply     // a reply under way, nil otherwise
	probe *probeWait // an ALIVE2 waiting for the holder of its name
}

// reply is a reply under way: out[off:] is still to be written (epoll), by
// the write deadline by; after holds the actions that follow its Send. A
// held registration carries none of it.
type reply struct {
	out   []byte
	off   int
	by    time.Time
	after []fsm.Action

	// buf is the pending buffer c is writing, shared with the other
	// connections writing the same bytes; encoding says c waits for its
	// reply to be encoded (replies.go).
	buf      *shared
	encoding bool
}

// writing reports whether the backend is writing a reply on c.
func (c *conn) writing() bool { return c.w != nil && c.w.out != nil }

// probeWait is an ALIVE2 waiting for the holder of its name to go.
type probeWait struct {
	holder      registry.ConnID
	start, next time.Time // the first look; the next (zero before the second)
	pause       time.Duration
}

// arrival is a connection's first appearance before the owner, with its
// request or what ended it first.
type arrival struct {
	fd    int
	ps    *psock
	peer  netip.Addr
	local bool
	inSet bool // epoll: it waited in the set under a pending key
}

// arrived steps a connection's first event: its request req if not nil,
// else ev. Owner only.
func (s *Server) arrived(a arrival, req wire.Request, ev fsm.Event) {
	o := &s.o
	o.g.check()
	if o.stopping {
		c := conn{fd: a.fd, ps: a.ps, inSet: a.inSet}
		s.be.close(&c, false)
		return
	}
	o.nextID++
	c := &o.one
	*c = conn{id: o.nextID, m: o.machine, fd: a.fd, ps: a.ps, inSet: a.inSet}
	c.m.Reset(fsm.Config{ID: c.id, Fd: a.fd, Local: a.local, Relaxed: s.cfg.Relaxed, Port: s.cfg.Port,
		ProbeGrace: max(s.cfg.ProbeGrace.Milliseconds(), 0)})
	if s.logConns {
		s.log.Log(context.Background(), LevelConn, "connection opened",
			"conn", uint64(c.id), "fd", a.fd, "peer", a.peer.String(), "local", a.local)
	}
	if s.logSteps {
		s.log.Log(context.Background(), LevelTrace,
			"conn "+fsm.ConnName(uint64(c.id))+" "+fsm.ConfigString(c.m.Config()))
	}
	var acts []fsm.Action
	if req != nil {
		acts = s.stepRequest(c, req)
	} else {
		acts = s.step(c, ev)
	}
	s.exec(c, acts)
}

// event steps a kept connection with ev: its peer's byte, end or error.
// Owner only.
func (s *Server) event(c *conn, ev fsm.Event) {
	s.o.g.check()
	if c.closed {
		return
	}
	s.exec(c, s.step(c, ev))
}

// sent resumes a connection whose reply the backend finished writing, or
// failed to (err). Owner only.
func (s *Server) sent(c *conn, err error) {
	s.o.g.check()
	if c.closed {
		return
	}
	s.release(c)
	var acts []fsm.Action
	if c.w != nil {
		acts, c.w.after = c.w.after, nil
	}
	if err != nil {
		if more := s.writeFailed(c, err); more != nil {
			acts = more
		}
	}
	s.exec(c, acts)
}

// exec carries out fsm's actions for c, in order: the one place that does.
// A Send the socket cannot take at once suspends the rest until the
// backend reports the write (sent); a ProbeOwner, until the probe is
// answered. Actions that end without a Close leave a kept socket.
func (s *Server) exec(c *conn, acts []fsm.Action) {
	o := &s.o
	o.g.check()
	s.run(c, acts)
	if o.kill && !o.stopping {
		o.kill = false
		s.shutdown(killMessage, slog.LevelInfo)
	}
}

func (s *Server) run(c *conn, acts []fsm.Action) {
	o := &s.o
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.Send:
			var waits bool
			var err error
			if c, waits, err = s.send(c, a.Resp, acts[i+1:]); waits {
				return
			}
			if err != nil {
				if more := s.writeFailed(c, err); more != nil {
					acts, i = more, -1
				}
			}
		case fsm.Close:
			s.closeConn(c, a)
			return
		case fsm.CloseConn:
			// STOP of another connection's node, or the holder of a
			// name found gone: close its socket now.
			if other := o.conns[a.ID]; other != nil {
				s.closeConn(other, fsm.Close{Reason: "stopped"})
			}
		case fsm.Shutdown:
			o.kill = true
		case fsm.ProbeOwner:
			s.probe(s.persist(c), a.ID)
			return
		case fsm.RegisteredNode:
			s.log.Debug("registered node", "conn", uint64(c.id), "name", a.Node.Name,
				"port", a.Node.Port, "creation", a.Creation)
		case fsm.UnregisteredNode:
			s.log.Debug("unregistered node", "conn", uint64(c.id), "name", a.Name)
		case fsm.Refusal:
			// Stock's words alone, as stock logs them without -d.
			s.log.Info(a.Detail)
		}
	}
	// No Close: the socket stays open, watched for its peer's next byte
	// or end.
	c = s.persist(c)
	if c.kept {
		return
	}
	c.kept = true
	if err := s.be.keep(c); err != nil {
		// Out of kernel memory: a registration nobody watches would
		// outlive its node, so end it now.
		s.log.Error("cannot watch a registered connection", "conn", uint64(c.id), "err", err)
		s.run(c, s.step(c, fsm.PeerClosed{Err: err}))
	}
}

// writeFailed tells the machine a reply failed, and returns its new
// actions, which replace the planned ones (a close planned with the reply
// becomes a reset: fsm decides), or nil.
func (s *Server) writeFailed(c *conn, err error) []fsm.Action {
	if more := s.step(c, fsm.WriteFailed{Err: err}); len(more) > 0 {
		return more
	}
	return nil
}

// persist moves a connection off the scratch conn and machine, into the
// table, so that it can wait. It returns the connection's own conn.
func (s *Server) persist(c *conn) *conn {
	if c.persisted {
		return c
	}
	o := &s.o
	pc := new(conn)
	*pc = *c
	pc.m = c.m.Clone()
	pc.persisted = true
	if pc.ps != nil {
		pc.ps.c = pc
	}
	o.conns[pc.id] = pc
	return pc
}

// closeConn closes a connection, with a reset if fsm asks for one or a
// reply is unfinished (replies.go), and forgets it.
func (s *Server) closeConn(c *conn, cl fsm.Close) {
	if c.closed {
		return
	}
	c.closed = true
	if c.persisted {
		delete(s.o.conns, c.id)
	}
	s.be.close(c, cl.Reset || c.unfinished())
	s.release(c)
	// logClose: stock epmd's own message, alone, when it has one
	// (refusals and protocol errors show without -d, as stock's level-0
	// messages do); otherwise a debug line.
	if cl.Detail != "" {
		s.log.Info(cl.Detail)
	}
	if s.logConns {
		s.log.Log(context.Background(), LevelConn, "connection closed", "conn", uint64(c.id), "reason", cl.Reason)
	}
}

// probe answers a ProbeOwner. The first question is answered at once with
// a look at the holder's socket; when fsm asks again (the holder still
// looked alive and its grace, fsm's decision, has not passed), the next
// look comes after a pause, from 1 ms doubling up to 16 ms, or as soon as
// the holder is forgotten (idle). An Erlang node (OTP 25) that stops and
// restarts distribution closes its old registration socket asynchronously,
// when the VM gets round to closing the dead erl_epmd process's port, and
// that can come a moment after the new ALIVE2: with a look at once alone
// about 1 restart in 400 was still refused.
func (s *Server) probe(c *conn, holder registry.ConnID) {
	now := time.Now()
	p := c.probe
	if p == nil {
		c.probe = &probeWait{holder: holder, start: now, pause: time.Millisecond}
		s.look(c, now)
		return
	}
	if p.next.IsZero() {
		// Nothing of this socket may wake the backend while it waits.
		s.be.hold(c)
	}
	p.holder = holder
	p.next = now.Add(p.pause)
	p.pause = min(2*p.pause, maxProbePause)
	s.o.probing = append(s.o.probing, c)
}

// look looks at the holder of the name c's ALIVE2 asks for, and steps the
// answer.
func (s *Server) look(c *conn, now time.Time) {
	p := c.probe
	h := s.o.conns[p.holder]
	gone := h == nil || s.be.gone(h)
	if gone && now.Sub(p.start) > 0 {
		s.log.Debug("holder of a requested name went away", "waited", now.Sub(p.start))
	}
	acts := s.step(c, fsm.OwnerProbed{Gone: gone, At: now.Sub(p.start).Milliseconds()})
	if _, again := probeOf(acts); !again {
		c.probe = nil
	}
	s.run(c, acts)
}

func probeOf(acts []fsm.Action) (fsm.ProbeOwner, bool) {
	if len(acts) == 1 {
		p, ok := acts[0].(fsm.ProbeOwner)
		return p, ok
	}
	return fsm.ProbeOwner{}, false
}

// idle runs before the owner waits: it looks again at the holders of the
// names that waiting ALIVE2s ask for, when their pause is over or the
// holder was forgotten meanwhile (its own end was handled, a STOP closed
// it: a node's close can reach the daemon a moment after its new ALIVE2
// when the machine is busy), and returns when the next look is due (zero:
// none). Owner only.
func (s *Server) idle() time.Time {
	o := &s.o
	if len(o.probing) == 0 {
		return time.Time{}
	}
	o.g.check()
	now := time.Now()
	list := o.probing
	o.probing = nil
	for _, c := range list {
		p := c.probe
		if c.closed || p == nil {
			continue
		}
		if o.conns[p.holder] == nil || !now.Before(p.next) {
			s.look(c, now) // may ask to look again later (probe)
			continue
		}
		o.probing = append(o.probing, c)
	}
	var next time.Time
	for _, c := range o.probing {
		if next.IsZero() || c.probe.next.Before(next) {
			next = c.probe.next
		}
	}
	return next
}

// shutdown stops accepting, closes every connection (registered nodes see
// their socket close) and closes Done; the backend then returns. why is
// logged at level. Owner only.
func (s *Server) shutdown(why string, level slog.Level) {
	o := &s.o
	o.g.check()
	if o.stopping {
		return
	}
	o.stopping = true
	// A connection still owed part of a reply, or all of one being
	// encoded, is reset at once: its client must not take what came for
	// a whole reply, and nothing waits for its write deadline.
	for id, c := range o.conns {
		c.closed = true
		s.be.close(c, c.unfinished())
		s.release(c)
		delete(o.conns, id)
	}
	o.probing = nil
	close(s.done)
	s.log.Log(context.Background(), level, why)
	s.be.stop()
}

// killMessage is what stock epmd logs, even without -d, when KILL stops it.
const killMessage = "got EPMD_KILL_REQ - terminates normal"

// stepRequest is step for a complete request, through fsm.StepRequest,
// which does not allocate an event.
func (s *Server) stepRequest(c *conn, req wire.Request) []fsm.Action {
	before := c.m.State()
	now := s.cfg.Now().Unix()
	acts := c.m.StepRequest(s.o.reg, req, now)
	if s.logSteps {
		s.logStep(c, before, fsm.Received{Req: req, Now: now}, acts)
	}
	return acts
}

func (s *Server) step(c *conn, ev fsm.Event) []fsm.Action {
	before := c.m.State()
	acts := c.m.Step(s.o.reg, ev)
	if s.logSteps {
		s.logStep(c, before, ev, acts)
	}
	return acts
}

// logStep logs a step at -d -d -d in the transcript syntax of fsm's tests
// ("c7 recv port2 name=\"alpha\""), with the state before and after and
// the actions (fsm.ActionString), so that a log replays through fsm.
func (s *Server) logStep(c *conn, before fsm.State, ev fsm.Event, acts []fsm.Action) {
	strs := make([]string, len(acts))
	for i, a := range acts {
		strs[i] = fsm.ActionString(a)
	}
	s.log.Log(context.Background(), LevelTrace, fsm.ConnName(uint64(c.id))+" "+fsm.EventString(ev),
		"state", before.String(), "next", c.m.State().String(), "actions", strs)
}
