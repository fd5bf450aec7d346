package fuzz_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// FuzzConnTranscript turns the fuzz input into a script of events for a
// few fsm.Conn that share one registry.Registry (registry.New(2), so that
// remembered records are recycled early), and checks after every step:
//
//   - reg.CheckInvariants() passes;
//   - Closed is absorbing: a step of a closed connection returns nothing;
//   - Close is the last action, comes at most once per connection, and
//     comes exactly when the state becomes Closed;
//   - every registry owner is a connection in state Registered that holds
//     that name, and every Registered connection owns its name, unless a
//     STOP or a probe took it and the server has not closed the socket yet;
//   - a model map name -> owner, kept only from the RegisteredNode and
//     UnregisteredNode actions, equals the registry's live owners;
//   - every Send encodes, and still encodes to the same bytes at the end
//     of the script (the server writes after releasing the registry, so a
//     reply must not alias registry memory); KILL says OK only when it may.
//
// The server's duty on CloseConn (close the other socket, whose goroutine
// then steps PeerClosed) is simulated by feeding that connection a
// PeerClosed: at once when the script's flag says so, else when a later
// op delivers it, since the real server does it asynchronously. At the end
// every connection gets PeerClosed and the registry must be empty.
//
// ProbeOwner (an ALIVE2 for a name someone holds) must be the only action
// of its step, name the name's current owner and leave the connection
// waiting; the simulated server answers at once with OwnerProbed, Gone
// when an earlier op made that owner's peer go away unnoticed.
//
// Script: byte 0 flags (bit 0 relaxed, bit 1 immediate CloseConn, bits 2-3
// slot count 2..4), byte 1 the peer bits of new connections (a clear bit
// is a local peer), then ops of one byte (low nibble the op, high nibble
// the slot) with their operands.
func FuzzConnTranscript(f *testing.F) {
	for _, s := range connSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		runConnScript(t, script)
	})
}

// Script ops (the low nibble of an op byte).
const (
	opAlive2     = iota // name, high (and extra), port: ALIVE2_REQ
	opAlive2Bis         // same, to make registrations frequent
	opPort2             // name
	opNames             //
	opDump              //
	opKill              //
	opStop              // name
	opMisc              // k: Malformed, WriteFailed, or the peer goes (k%3)
	opData              //
	opPeerClosed        //
	opTimeout           //
	opNames2            // NAMES again, on the spare op code
	opReopen            // replace the slot's connection by a new one, if closed
	opDeliver           // deliver the oldest pending CloseConn
	opClock             // n, shift: advance the clock by n<<shift seconds
	opDecode            // n, n bytes: DecodeRequest them; Received or Malformed
)

// namePool is small so that names collide; it holds names that refuse (bad
// UTF-8, too long) and the empty name.
var namePool = []string{
	"a", "b", "c", "a", "b", "", "a b", "\xff",
	strings.Repeat("é", 256), strings.Repeat("x", 1021), "é", "c",
}

var highPool = []uint16{6, 5, 0, 7, 65535, 6, 5, 6}

var extraPool = []string{"", "", "x", "EXTRA\x00x", strings.Repeat("e", 1021)}

// script reads a fuzz input byte by byte; past the end it gives zeros.
type script struct {
	b []byte
	i int
}

func (s *script) more() bool { return s.i < len(s.b) }

func (s *script) next() byte {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return s.b[s.i-1]
}

func (s *script) take(n int) []byte {
	n = min(n, len(s.b)-s.i)
	out := s.b[s.i : s.i+n]
	s.i += n
	return out
}

type simConn struct {
	c        *fsm.Conn
	id       registry.ConnID
	closed   bool // Close seen
	stopped  bool // its registration was taken (STOP, or a probe found its peer gone)
	peerGone bool // the peer has closed; a ProbeOwner of this conn sees it
	replied  bool // the step that closed it planned a reply
}

type sentReply struct {
	resp wire.Response
	enc  []byte
	step int
}

type connSim struct {
	t         *testing.T
	reg       *registry.Registry
	slots     []*simConn
	byID      map[registry.ConnID]*simConn
	nextID    registry.ConnID
	relaxed   bool
	immediate bool
	localBits byte
	now       int64
	model     map[string]registry.ConnID
	pending   []registry.ConnID
	sent      []sentReply
	log       []string
	shutdown  bool
}

func runConnScript(t *testing.T, b []byte) {
	s := &script{b: b}
	flags := s.next()
	sim := &connSim{
		t:         t,
		reg:       registry.New(2),
		relaxed:   flags&1 != 0,
		immediate: flags&2 != 0,
		localBits: s.next(),
		byID:      make(map[registry.ConnID]*simConn),
		model:     make(map[string]registry.ConnID),
		now:       1795338672,
	}
	sim.slots = make([]*simConn, 2+int(flags>>2&3)%3)
	sim.logf("relaxed=%v immediate=%v slots=%d local=%08b", sim.relaxed, sim.immediate, len(sim.slots), sim.localBits)
	for s.more() && !sim.shutdown {
		op := s.next()
		slot := int(op>>4) % len(sim.slots)
		var ev fsm.Event
		switch op & 15 {
		case opAlive2, opAlive2Bis:
			name, high := namePool[int(s.next())%len(namePool)], s.next()
			port := uint16(s.next())<<8 | uint16(s.next())
			ev = fsm.Received{Now: sim.now, Req: &wire.Alive2Req{Node: wire.Node{
				Name: name, Port: port, Type: wire.NodeNormal, High: highPool[high%8], Low: 5,
				Extra: extraPool[int(high>>3)%len(extraPool)],
			}}}
		case opPort2:
			ev = fsm.Received{Now: sim.now, Req: &wire.PortPlease2Req{Name: namePool[int(s.next())%len(namePool)]}}
		case opNames:
			ev = fsm.Received{Now: sim.now, Req: &wire.NamesReq{}}
		case opDump:
			ev = fsm.Received{Now: sim.now, Req: &wire.DumpReq{}}
		case opKill:
			ev = fsm.Received{Now: sim.now, Req: &wire.KillReq{}}
		case opStop:
			ev = fsm.Received{Now: sim.now, Req: &wire.StopReq{Name: namePool[int(s.next())%len(namePool)]}}
		case opMisc:
			switch s.next() % 3 {
			case 0:
				ev = fsm.Malformed{Err: wire.ErrTrailingData}
			case 1:
				ev = fsm.WriteFailed{Err: errors.New("broken pipe")}
			default:
				// The peer closes, but the server has not read the EOF
				// yet: only a probe of the socket would see it.
				c := sim.conn(slot)
				c.peerGone = true
				sim.logf("conn %d: peer gone", c.id)
				continue
			}
		case opData:
			ev = fsm.Data{}
		case opPeerClosed:
			ev = fsm.PeerClosed{}
		case opTimeout:
			ev = fsm.Timeout{}
		case opNames2:
			ev = fsm.Received{Now: sim.now, Req: &wire.NamesReq{}}
		case opReopen:
			if c := sim.slots[slot]; c != nil && c.c.State() == fsm.Closed {
				sim.slots[slot] = nil
			}
			sim.conn(slot)
			continue
		case opDeliver:
			sim.deliver(1)
			sim.check()
			continue
		case opClock:
			n, shift := int64(s.next()), s.next()%40
			sim.now += n << shift
			sim.logf("clock += %d<<%d: %d", n, shift, sim.now)
			continue
		case opDecode:
			body := s.take(int(s.next()) % 48)
			req, err := wire.DecodeRequest(body)
			if err != nil {
				ev = fsm.Malformed{Err: err}
			} else {
				ev = fsm.Received{Now: sim.now, Req: req}
			}
		}
		sim.step(sim.conn(slot), ev)
		sim.check()
	}
	// The end: the server closes every connection (after a KILL, or
	// because the peers go away); nothing may stay registered.
	sim.deliver(len(sim.pending))
	for _, c := range sim.allConns() {
		sim.step(c, fsm.PeerClosed{})
		sim.check()
	}
	if n := sim.reg.Len(); n != 0 || len(sim.model) != 0 {
		sim.fatalf("all connections closed, but %d nodes registered, model %v", n, sim.model)
	}
	for _, r := range sim.sent {
		enc, err := r.resp.AppendBinary(nil)
		if err != nil || !bytes.Equal(enc, r.enc) {
			sim.fatalf("reply of step %d was %q when sent, is now %q, %v: it aliases memory that changed", r.step, r.enc, enc, err)
		}
	}
}

func (sim *connSim) logf(format string, args ...any) {
	sim.log = append(sim.log, fmt.Sprintf(format, args...))
}

func (sim *connSim) fatalf(format string, args ...any) {
	sim.t.Helper()
	sim.t.Fatalf("%s\ntranscript:\n  %s", fmt.Sprintf(format, args...), strings.Join(sim.log, "\n  "))
}

// conn returns the slot's connection, opening one if there is none.
func (sim *connSim) conn(slot int) *simConn {
	if c := sim.slots[slot]; c != nil {
		return c
	}
	sim.nextID++
	local := sim.localBits>>(uint(sim.nextID)%8)&1 == 0 // mostly local: bit clear means local
	c := &simConn{id: sim.nextID, c: fsm.New(fsm.Config{
		ID: sim.nextID, Fd: 4 + int(sim.nextID), Local: local, Relaxed: sim.relaxed, Port: 14369,
	})}
	sim.slots[slot] = c
	sim.byID[c.id] = c
	sim.logf("conn %d opened in slot %d, local=%v", c.id, slot, local)
	return c
}

// allConns returns every connection ever opened, in ID order.
func (sim *connSim) allConns() []*simConn {
	var out []*simConn
	for id := registry.ConnID(1); id <= sim.nextID; id++ {
		out = append(out, sim.byID[id])
	}
	return out
}

// deliver feeds PeerClosed to the connections of the n oldest pending
// CloseConn actions.
func (sim *connSim) deliver(n int) {
	for ; n > 0 && len(sim.pending) > 0; n-- {
		id := sim.pending[0]
		sim.pending = sim.pending[1:]
		sim.logf("server closes conn %d (CloseConn)", id)
		sim.step(sim.byID[id], fsm.PeerClosed{Err: errors.New("use of closed network connection")})
	}
}

func eventString(ev fsm.Event) string {
	if r, ok := ev.(fsm.Received); ok {
		return fmt.Sprintf("Received{%v %+v}", r.Req.Tag(), r.Req)
	}
	return fmt.Sprintf("%T%+v", ev, ev)
}

func actionsString(acts []fsm.Action) string {
	var parts []string
	for _, a := range acts {
		if send, ok := a.(fsm.Send); ok {
			parts = append(parts, fmt.Sprintf("Send{%T%+v}", send.Resp, send.Resp))
			continue
		}
		parts = append(parts, fmt.Sprintf("%T%+v", a, a))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// step applies ev to c and checks the actions on their own.
func (sim *connSim) step(c *simConn, ev fsm.Event) {
	sim.t.Helper()
	before := c.c.State()
	liveBefore := sim.reg.Len()
	acts := c.c.Step(sim.reg, ev)
	sim.logf("conn %d %v: %s -> %v %s", c.id, before, eventString(ev), c.c.State(), actionsString(acts))
	if _, wf := ev.(fsm.WriteFailed); wf && before == fsm.Closed && c.replied {
		// The reply planned with the close failed: that close, not made
		// yet, becomes a reset (a planned Shutdown stays), once.
		c.replied = false
		if n := len(acts); n == 0 || c.c.State() != fsm.Closed || acts[n-1] != (fsm.Close{Reason: fsm.ReasonWriteFailed, Reset: true}) {
			sim.fatalf("closed conn %d: WriteFailed of its reply gave %s", c.id, actionsString(acts))
		}
		return
	}
	if before == fsm.Closed && (len(acts) > 0 || c.c.State() != fsm.Closed) {
		sim.fatalf("closed conn %d acted or left Closed", c.id)
	}
	var closeConns []registry.ConnID
	var probe *fsm.OwnerProbed
	for i, a := range acts {
		switch a := a.(type) {
		case fsm.Close:
			if i != len(acts)-1 {
				sim.fatalf("conn %d: Close is action %d of %d", c.id, i+1, len(acts))
			}
			if c.closed {
				sim.fatalf("conn %d: second Close", c.id)
			}
			c.closed = true
			for _, b := range acts {
				if _, ok := b.(fsm.Send); ok {
					c.replied = true
				}
			}
		case fsm.CloseConn:
			o := sim.byID[a.ID]
			switch {
			case o == nil:
				sim.fatalf("conn %d: CloseConn of unknown conn %d", c.id, a.ID)
			case o == c:
				sim.fatalf("conn %d: CloseConn of itself", c.id)
			case o.c.State() != fsm.Registered:
				sim.fatalf("conn %d: CloseConn of conn %d in state %v", c.id, a.ID, o.c.State())
			}
			o.stopped = true
			closeConns = append(closeConns, a.ID)
		case fsm.RegisteredNode:
			if owner, dup := sim.model[a.Node.Name]; dup {
				sim.fatalf("conn %d registered %q, which conn %d holds", c.id, a.Node.Name, owner)
			}
			if a.Creation < 4 {
				sim.fatalf("conn %d registered %q with creation %d", c.id, a.Node.Name, a.Creation)
			}
			sim.model[a.Node.Name] = c.id
		case fsm.UnregisteredNode:
			owner, ok := sim.model[a.Name]
			if !ok {
				sim.fatalf("conn %d unregistered %q, which nobody holds", c.id, a.Name)
			}
			if owner != c.id && !hasCloseConn(acts, owner) {
				sim.fatalf("conn %d unregistered %q of conn %d without closing it", c.id, a.Name, owner)
			}
			delete(sim.model, a.Name)
		case fsm.Send:
			enc, err := a.Resp.AppendBinary(nil)
			if err != nil {
				sim.fatalf("conn %d: reply %#v does not encode: %v", c.id, a.Resp, err)
			}
			if k, ok := a.Resp.(*wire.KillResp); ok && k.OK && !sim.relaxed && liveBefore > 0 {
				sim.fatalf("conn %d: KILL said OK with %d nodes registered, not relaxed", c.id, liveBefore)
			}
			sim.sent = append(sim.sent, sentReply{resp: a.Resp, enc: enc, step: len(sim.log)})
		case fsm.Shutdown:
			sim.shutdown = true
		case fsm.ProbeOwner:
			o := sim.byID[a.ID]
			var owner registry.ConnID
			var held bool
			if r, ok := ev.(fsm.Received); ok {
				if req, ok := r.Req.(*wire.Alive2Req); ok {
					owner, held = sim.reg.Owner(req.Name)
				}
			}
			switch {
			case len(acts) != 1:
				sim.fatalf("conn %d: ProbeOwner is not the only action", c.id)
			case o == nil || o == c || !held || owner != a.ID:
				sim.fatalf("conn %d: ProbeOwner of conn %d; the name asked for is held by %d (%v)", c.id, a.ID, owner, held)
			case c.c.State() != fsm.AwaitingRequest:
				sim.fatalf("conn %d: ProbeOwner left it in %v", c.id, c.c.State())
			}
			probe = &fsm.OwnerProbed{Gone: o.peerGone}
		case fsm.Refusal:
		default:
			sim.fatalf("conn %d: unknown action %T", c.id, a)
		}
	}
	if (c.c.State() == fsm.Closed) != c.closed {
		sim.fatalf("conn %d: state %v, Close seen %v", c.id, c.c.State(), c.closed)
	}
	if probe != nil {
		// The server answers at once, under the same lock.
		sim.step(c, *probe)
		return
	}
	for _, id := range closeConns {
		if sim.immediate {
			sim.logf("server closes conn %d (CloseConn)", id)
			sim.step(sim.byID[id], fsm.PeerClosed{Err: errors.New("use of closed network connection")})
		} else {
			sim.pending = append(sim.pending, id)
		}
	}
}

func hasCloseConn(acts []fsm.Action, id registry.ConnID) bool {
	for _, a := range acts {
		if cc, ok := a.(fsm.CloseConn); ok && cc.ID == id {
			return true
		}
	}
	return false
}

// check verifies the invariants that hold between steps.
func (sim *connSim) check() {
	sim.t.Helper()
	if err := sim.reg.CheckInvariants(); err != nil {
		sim.fatalf("registry: %v", err)
	}
	owners := make(map[string]registry.ConnID)
	for _, e := range sim.reg.Live() {
		owners[e.Name] = e.Owner
		c := sim.byID[e.Owner]
		if c == nil {
			sim.fatalf("%q is held by unknown conn %d", e.Name, e.Owner)
		}
		if name, ok := c.c.Name(); !ok || name != e.Name || c.c.State() != fsm.Registered {
			sim.fatalf("%q is held by conn %d in state %v with name %q", e.Name, e.Owner, c.c.State(), name)
		}
	}
	for _, c := range sim.byID {
		if name, ok := c.c.Name(); ok {
			if owner, _ := sim.reg.Owner(name); owner != c.id && !c.stopped {
				sim.fatalf("conn %d is Registered as %q, which the registry gives to conn %d", c.id, name, owner)
			}
		}
	}
	if !maps.Equal(owners, sim.model) {
		sim.fatalf("registry owners differ from the model (-model +registry):\n%s", cmp.Diff(sim.model, owners))
	}
}

// connSeeds are hand-written scripts: registrations that collide, STOP
// with immediate and delayed CloseConn, KILL refused and accepted, events
// on closed and kept connections, record recycling through the small cap.
func connSeeds() [][]byte {
	const (
		relaxed   = 1
		immediate = 2
		three     = 1 << 2
	)
	slot := func(op, s int) byte { return byte(op | s<<4) }
	return [][]byte{
		// Register "a" on slot 0, duplicate on slot 1, NAMES and DUMP
		// on slot 2, then slot 0 closes and slot 1 retries.
		{three, 0,
			slot(opAlive2, 0), 0, 0, 0x15, 0xb3,
			slot(opAlive2, 1), 0, 1, 0x1a, 0x0a,
			slot(opNames, 2), slot(opReopen, 2), slot(opDump, 2),
			slot(opPeerClosed, 0), slot(opData, 1), slot(opReopen, 1),
			slot(opAlive2, 1), 0, 0, 0, 1},
		// Relaxed STOP of a registered name, CloseConn delivered later,
		// then the name registered again before the delivery.
		{relaxed | three, 0,
			slot(opAlive2, 0), 1, 0, 0, 2,
			slot(opStop, 1), 1,
			slot(opAlive2, 2), 1, 0, 0, 3,
			slot(opDeliver, 0), slot(opNames, 0), slot(opReopen, 0), slot(opNames, 0)},
		// Same with immediate CloseConn, and STOP of an unknown name.
		{relaxed | immediate | three, 0,
			slot(opAlive2, 0), 1, 0, 0, 2,
			slot(opStop, 1), 1, slot(opReopen, 1), slot(opStop, 1), 2},
		// KILL refused while registered, accepted when relaxed.
		{0, 0, slot(opAlive2, 0), 2, 1, 0, 9, slot(opKill, 1), slot(opReopen, 1), slot(opKill, 1)},
		{relaxed, 0, slot(opAlive2, 0), 2, 1, 0, 9, slot(opKill, 1)},
		// Remote peers: ALIVE2, DUMP, KILL, STOP refused.
		{relaxed | three, 0xff, slot(opAlive2, 0), 0, 0, 0, 1, slot(opDump, 1), slot(opKill, 2)},
		// Refused registrations (bad UTF-8, too long, long extra) stay
		// open and ignore Timeout; then Data closes them.
		{three, 0,
			slot(opAlive2, 0), 7, 0, 0, 1, slot(opTimeout, 0),
			slot(opAlive2, 1), 8, 1, 0, 1,
			slot(opAlive2, 2), 0, 0x20, 0, 1,
			slot(opData, 0), slot(opMisc, 1), 1, slot(opMisc, 2), 0, slot(opPeerClosed, 2)},
		// Churn through the remembered cap of 2, with clock jumps past
		// 32 bits so creations wrap.
		{0, 0,
			slot(opAlive2, 0), 0, 0, 0, 1, slot(opPeerClosed, 0), slot(opReopen, 0),
			slot(opAlive2, 0), 1, 0, 0, 1, slot(opPeerClosed, 0), slot(opReopen, 0),
			slot(opClock, 0), 0xff, 32,
			slot(opAlive2, 0), 2, 0, 0, 1, slot(opPeerClosed, 0), slot(opReopen, 0),
			slot(opAlive2, 0), 10, 0, 0, 1, slot(opPeerClosed, 0), slot(opReopen, 0),
			slot(opAlive2, 0), 0, 1, 0, 1, slot(opDump, 1)},
		// Decoded requests: ALIVE2 with an empty name, PORT2, STOP.
		append([]byte{relaxed, 0, slot(opDecode, 0), 15}, alive2(1, 'M', 6, 5, "", "x")...),
		append([]byte{relaxed, 0, slot(opDecode, 0), 14}, cat(alive2Body(1, 'M', 0, 6, 5, 0, "", 0, ""), 0)...),
		{relaxed, 0, slot(opAlive2, 0), 0, 0, 0, 1, slot(opDecode, 1), 2, 'z', 'a', slot(opDecode, 1), 2, 's', 'a'},
		// A node restarts before the daemon saw its old socket close
		// (erlang/otp#11083): the probe finds the holder gone, delayed
		// and immediate CloseConn; and a probe that finds it alive.
		{three, 0, slot(opAlive2, 0), 0, 0, 0, 1, slot(opMisc, 0), 2, slot(opAlive2, 1), 0, 0, 0, 2,
			slot(opNames, 2), slot(opDeliver, 0), slot(opReopen, 2), slot(opDump, 2)},
		{immediate, 0, slot(opAlive2, 0), 0, 0, 0, 1, slot(opMisc, 0), 2, slot(opAlive2, 1), 0, 0, 0, 2},
		{0, 0, slot(opAlive2, 0), 0, 0, 0, 1, slot(opAlive2, 1), 0, 1, 0, 2, slot(opPeerClosed, 0), slot(opReopen, 0),
			slot(opAlive2, 0), 0, 1, 0, 2},
	}
}
