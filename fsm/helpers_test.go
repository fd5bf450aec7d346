package fsm_test

import (
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// tb is the part of *testing.T, *testing.B and *rapid.T the helpers need.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// diffOpts compare actions: a nil and an empty list of NAMES or DUMP
// entries encode to the same bytes, and the stock log text of a Close is
// pinned separately, by TestStockMessages.
var diffOpts = []cmp.Option{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(fsm.Close{}, "Detail")}

// step applies ev to c and fails the test if the registry's invariants do
// not hold afterwards. A ProbeOwner is answered at once, as the server
// does, with the holder alive (stock's view), and left out of the result.
// Every test steps through here or through stepProbe.
func step(t tb, c *fsm.Conn, reg *registry.Registry, ev fsm.Event) []fsm.Action {
	t.Helper()
	acts := stepProbe(t, c, reg, ev, func(registry.ConnID) bool { return false })
	if len(acts) > 0 {
		if _, ok := acts[0].(fsm.ProbeOwner); ok {
			acts = acts[1:]
		}
	}
	return acts
}

// stepProbe applies ev to c, answers a ProbeOwner with gone(owner) as the
// server would, and returns every action of both steps in order.
func stepProbe(t tb, c *fsm.Conn, reg *registry.Registry, ev fsm.Event, gone func(registry.ConnID) bool) []fsm.Action {
	t.Helper()
	acts := stepChecked(t, c, reg, ev)
	if _, again := ev.(fsm.OwnerProbed); again {
		return acts // an answer given by the caller: a new question waits for the next
	}
	if len(acts) == 1 {
		if p, ok := acts[0].(fsm.ProbeOwner); ok {
			acts = append(acts, stepChecked(t, c, reg, fsm.OwnerProbed{Gone: gone(p.ID)})...)
		}
	}
	return acts
}

func stepChecked(t tb, c *fsm.Conn, reg *registry.Registry, ev fsm.Event) []fsm.Action {
	t.Helper()
	acts := c.Step(reg, ev)
	if err := reg.CheckInvariants(); err != nil {
		t.Fatalf("conn %d after %T: %v", c.Config().ID, ev, err)
	}
	for i, a := range acts {
		if _, ok := a.(fsm.ProbeOwner); ok && len(acts) != 1 {
			t.Fatalf("conn %d: ProbeOwner is not alone (action %d of %d): %#v", c.Config().ID, i, len(acts), acts)
		}
	}
	return acts
}

// node is a well-formed registration: type 'M', protocol 0, versions 6/5.
func node(name string, port uint16) wire.Node {
	return wire.Node{Name: name, Port: port, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}
}

func alive2(n wire.Node, now int64) fsm.Received {
	return fsm.Received{Req: &wire.Alive2Req{Node: n}, Now: now}
}

// alive2v is ALIVE2 for name on port with HighestVersion high.
func alive2v(name string, port, high uint16, now int64) fsm.Received {
	n := node(name, port)
	n.High = high
	return alive2(n, now)
}

func port2(name string) fsm.Received { return fsm.Received{Req: &wire.PortPlease2Req{Name: name}} }
func stop(name string) fsm.Received  { return fsm.Received{Req: &wire.StopReq{Name: name}} }

var (
	names = fsm.Received{Req: &wire.NamesReq{}}
	dump  = fsm.Received{Req: &wire.DumpReq{}}
	kill  = fsm.Received{Req: &wire.KillReq{}}
)

// owners returns who holds each registered name.
func owners(reg *registry.Registry) map[string]registry.ConnID {
	m := make(map[string]registry.ConnID)
	for _, e := range reg.Live() {
		m[e.Name] = e.Owner
	}
	return m
}

func rep(s string, n int) string { return strings.Repeat(s, n) }
