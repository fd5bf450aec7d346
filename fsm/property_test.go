package fsm_test

import (
	"bytes"
	"fmt"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// TestConnProperties drives several connections sharing one registry with
// random events and checks, after every step:
//
//   - Closed is absorbing: no actions, no way out, but for one WriteFailed
//     of the reply planned with the close, which makes that close a reset;
//   - a connection gets at most one Close, as the last action of the step
//     that closes it, and nothing after it; a step that ends in Closed
//     carries that Close;
//   - the registry (name -> owner) equals a model kept only from the
//     actions: RegisteredNode adds the stepping connection, UnregisteredNode
//     removes it (or, under STOP, the owner that the following CloseConn
//     names);
//   - every connection in Registered either owns its name in the registry
//     or lost it to a STOP by another connection (and then owns nothing);
//     every registry owner is a connection in Registered under that name;
//   - after PeerClosed (or any end) a connection owns nothing;
//   - replies already handed out do not change when later steps run.
func TestConnProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := &machine{
			reg:   registry.New(rapid.SampledFrom([]int{0, 1, registry.DebugMaxRemembered}).Draw(t, "maxRemembered")),
			byID:  map[registry.ConnID]*tconn{},
			model: map[string]registry.ConnID{},
			now:   1000,
		}
		m.open(t)
		t.Repeat(map[string]func(*rapid.T){
			"open": m.open,
			"step": m.step,
			// a second key makes steps twice as likely as new connections
			"step2": m.step,
			"":      m.check,
		})
	})
}

type tconn struct {
	c       *fsm.Conn
	closed  bool // a Close action was seen
	stopped bool // a STOP from another connection took its registration
	replied bool // the step that closed it planned a reply
}

// sent is a reply as encoded when Step returned it.
type sent struct {
	resp  wire.Response
	bytes []byte
}

type machine struct {
	reg   *registry.Registry
	conns []*tconn
	byID  map[registry.ConnID]*tconn
	model map[string]registry.ConnID
	sends []sent
	now   int64
}

// Names collide often from a pool of three; a few are refused for content.
var (
	goodNames = []string{"a", "b", "c"}
	badNames  = []string{"\xff", rep("x", 256), rep("y", 1021)}
)

func drawName(t *rapid.T, label string) string {
	if rapid.IntRange(0, 9).Draw(t, label+"Bad") == 0 {
		return rapid.SampledFrom(badNames).Draw(t, label)
	}
	return rapid.SampledFrom(goodNames).Draw(t, label)
}

func (m *machine) open(t *rapid.T) {
	id := registry.ConnID(len(m.conns) + 1)
	cfg := fsm.Config{
		ID:      id,
		Fd:      int(id) + 4,
		Local:   rapid.IntRange(0, 4).Draw(t, "remote") != 0,
		Relaxed: rapid.Bool().Draw(t, "relaxed"),
		Port:    wire.DefaultPort,
	}
	tc := &tconn{c: fsm.New(cfg)}
	m.conns = append(m.conns, tc)
	m.byID[id] = tc
}

func (m *machine) drawEvent(t *rapid.T) fsm.Event {
	switch rapid.IntRange(0, 14).Draw(t, "kind") {
	case 0, 1, 2, 3:
		m.now += int64(rapid.IntRange(0, 2).Draw(t, "tick"))
		n := node(drawName(t, "name"), uint16(rapid.IntRange(1, 3).Draw(t, "port")))
		n.High = rapid.SampledFrom([]uint16{0, 5, 6, 7, 65535}).Draw(t, "high")
		return alive2(n, m.now)
	case 4:
		return port2(drawName(t, "name"))
	case 5:
		return names
	case 6:
		return dump
	case 7:
		return kill
	case 8, 9:
		// Mostly a name someone holds, so STOP often takes a registration.
		if held := sortedKeys(m.model); len(held) > 0 && rapid.Bool().Draw(t, "stopHeld") {
			return stop(rapid.SampledFrom(held).Draw(t, "name"))
		}
		return stop(drawName(t, "name"))
	case 10:
		return fsm.Malformed{}
	case 11:
		return fsm.Data{}
	case 12:
		return fsm.PeerClosed{}
	case 13:
		return fsm.Timeout{}
	default:
		return fsm.WriteFailed{}
	}
}

func (m *machine) step(t *rapid.T) {
	// Mostly a connection still open; sometimes any, to exercise Closed.
	pool := m.conns
	var open []*tconn
	for _, tc := range m.conns {
		if !tc.closed {
			open = append(open, tc)
		}
	}
	if len(open) > 0 && rapid.IntRange(0, 4).Draw(t, "anyConn") != 0 {
		pool = open
	}
	tc := pool[rapid.IntRange(0, len(pool)-1).Draw(t, "conn")]
	ev := m.drawEvent(t)
	id := tc.c.Config().ID
	before := tc.c.State()
	liveBefore := m.reg.Len()
	namesBefore := sortedKeys(m.model)

	acts := step(t, tc.c, m.reg, ev)
	after := tc.c.State()

	if tc.closed {
		if _, wf := ev.(fsm.WriteFailed); wf && tc.replied {
			// The reply planned with the close failed: the close
			// becomes a reset, once.
			tc.replied = false
			if len(acts) == 0 || after != fsm.Closed || acts[len(acts)-1] != (fsm.Close{Reason: fsm.ReasonWriteFailed, Reset: true}) {
				t.Fatalf("conn %d: WriteFailed of its reply gave %#v and state %v", id, acts, after)
			}
			return
		}
		if acts != nil || after != fsm.Closed {
			t.Fatalf("conn %d: closed, but %T gave %#v and state %v", id, ev, acts, after)
		}
		return
	}
	replied := false
	for i, a := range acts {
		if _, ok := a.(fsm.Send); ok {
			replied = true
		}
		if _, ok := a.(fsm.Close); ok {
			if i != len(acts)-1 {
				t.Fatalf("conn %d: Close at %d of %d actions: %#v", id, i, len(acts), acts)
			}
			tc.closed = true
			tc.replied = replied
		}
	}
	if tc.closed != (after == fsm.Closed) {
		t.Fatalf("conn %d: %v -> %v with actions %#v", id, before, after, acts)
	}

	// A STOP executed as this connection's request (on a kept socket it
	// is just data).
	isStop := false
	if r, ok := ev.(fsm.Received); ok && before == fsm.AwaitingRequest {
		_, isStop = r.Req.(*wire.StopReq)
	}
	for i := 0; i < len(acts); i++ {
		switch a := acts[i].(type) {
		case fsm.RegisteredNode:
			if holder, taken := m.model[a.Node.Name]; taken {
				t.Fatalf("conn %d registered %q held by %d", id, a.Node.Name, holder)
			}
			if name, ok := tc.c.Name(); !ok || name != a.Node.Name || after != fsm.Registered {
				t.Fatalf("conn %d registered %q but Name() = %q, %v in %v", id, a.Node.Name, name, ok, after)
			}
			m.model[a.Node.Name] = id
		case fsm.UnregisteredNode:
			holder, ok := m.model[a.Name]
			if !ok {
				t.Fatalf("conn %d unregistered %q, which nobody holds", id, a.Name)
			}
			if isStop {
				// STOP: the next action closes the holder's socket.
				cc, ok := next(acts, i).(fsm.CloseConn)
				if !ok || cc.ID != holder || cc.ID == id {
					t.Fatalf("conn %d: STOP of %q held by %d: actions %#v", id, a.Name, holder, acts)
				}
				victim := m.byID[holder]
				if victim.c.State() != fsm.Registered {
					t.Fatalf("STOP closes conn %d in %v", holder, victim.c.State())
				}
				victim.stopped = true
				i++
			} else if holder != id {
				t.Fatalf("conn %d unregistered %q held by %d", id, a.Name, holder)
			}
			delete(m.model, a.Name)
		case fsm.CloseConn:
			t.Fatalf("conn %d: CloseConn without a STOP unregistering: %#v", id, acts)
		case fsm.Send:
			b, err := a.Resp.AppendBinary(nil)
			if err != nil {
				t.Fatalf("conn %d: encoding %#v: %v", id, a.Resp, err)
			}
			m.sends = append(m.sends, sent{a.Resp, b})
			switch r := a.Resp.(type) {
			case *wire.KillResp:
				cfg := tc.c.Config()
				if want := cfg.Relaxed || liveBefore == 0; r.OK != want {
					t.Fatalf("conn %d: KILL OK = %v with %d live, relaxed %v", id, r.OK, liveBefore, cfg.Relaxed)
				}
				_, shut := next(acts, i).(fsm.Shutdown)
				if shut != r.OK {
					t.Fatalf("conn %d: KILL actions %#v", id, acts)
				}
			case *wire.NamesResp:
				var got []string
				for _, e := range r.Nodes {
					got = append(got, e.Name)
				}
				sort.Strings(got)
				if d := cmp.Diff(namesBefore, got, diffOpts...); d != "" {
					t.Fatalf("conn %d: NAMES (-model +got):\n%s", id, d)
				}
			}
		case fsm.Shutdown:
			if _, ok := prev(acts, i).(fsm.Send); !ok {
				t.Fatalf("conn %d: Shutdown not after the KILL reply: %#v", id, acts)
			}
		}
	}
	// Whatever ended the connection, it owns nothing any more.
	if after == fsm.Closed {
		for name, holder := range owners(m.reg) {
			if holder == id {
				t.Fatalf("conn %d closed but still owns %q", id, name)
			}
		}
	}
}

func next(acts []fsm.Action, i int) fsm.Action {
	if i+1 < len(acts) {
		return acts[i+1]
	}
	return nil
}

func prev(acts []fsm.Action, i int) fsm.Action {
	if i > 0 {
		return acts[i-1]
	}
	return nil
}

func sortedKeys(m map[string]registry.ConnID) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func (m *machine) check(t *rapid.T) { m.checkWith(t) }

// checker is the part of *rapid.T that checkWith needs.
type checker interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func (m *machine) checkWith(t checker) {
	if err := m.reg.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m.model, owners(m.reg), diffOpts...); d != "" {
		t.Fatalf("registry owners (-model +registry):\n%s", d)
	}
	for _, tc := range m.conns {
		id := tc.c.Config().ID
		name, ok := tc.c.Name()
		if ok != (tc.c.State() == fsm.Registered) {
			t.Fatalf("conn %d in %v: Name() ok = %v", id, tc.c.State(), ok)
		}
		if !ok {
			continue
		}
		owner, held := m.reg.Owner(name)
		if owns := held && owner == id; owns == tc.stopped {
			t.Fatalf("conn %d registered as %q: registry owner %d (held %v), stopped %v", id, name, owner, held, tc.stopped)
		}
	}
	for _, e := range m.reg.Live() {
		tc := m.byID[e.Owner]
		if tc == nil {
			t.Fatalf("%q owned by unknown conn %d", e.Name, e.Owner)
		}
		if name, ok := tc.c.Name(); !ok || name != e.Name || tc.stopped {
			t.Fatalf("%q owned by conn %d in %v with Name() = %q, %v, stopped %v",
				e.Name, e.Owner, tc.c.State(), name, ok, tc.stopped)
		}
		if e.Fd != tc.c.Config().Fd {
			t.Fatalf("%q has fd %d, its connection %d", e.Name, e.Fd, tc.c.Config().Fd)
		}
	}
	for i, s := range m.sends {
		b, err := s.resp.AppendBinary(nil)
		if err != nil || !bytes.Equal(b, s.bytes) {
			t.Fatalf("reply %d changed after it was handed out: %q, now %q (%v)", i, s.bytes, b, err)
		}
	}
}

// TestConnPropertiesCanFail makes sure the property harness notices a
// broken machine: a conn whose registration is removed behind its back
// (not by STOP) must be reported.
func TestConnPropertiesCanFail(t *testing.T) {
	reg := registry.New(registry.MaxRemembered)
	m := &machine{reg: reg, byID: map[registry.ConnID]*tconn{}, model: map[string]registry.ConnID{}}
	c := fsm.New(local)
	m.conns = append(m.conns, &tconn{c: c})
	m.byID[self] = m.conns[0]
	acts := step(t, c, reg, alive2(node("a", 1), 1))
	m.model["a"] = self
	if len(acts) != 2 {
		t.Fatalf("setup: %#v", acts)
	}
	reg.Unregister("a", self) // behind the machine's back
	delete(m.model, "a")
	var ft fakeT
	func() {
		defer func() { _ = recover() }()
		m.checkWith(&ft)
	}()
	if !ft.failed {
		t.Fatal("check did not notice a Registered conn that lost its name without STOP")
	}
}

// fakeT records a failure; Fatalf panics to stop the check like FailNow.
type fakeT struct{ failed bool }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	panic(fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	panic(fmt.Sprint(args...))
}
