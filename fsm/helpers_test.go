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
// entries encode to the same bytes.
var diffOpts = []cmp.Option{cmpopts.EquateEmpty()}

// step applies ev to c and fails the test if the registry's invariants do
// not hold afterwards. Every test steps through here.
func step(t tb, c *fsm.Conn, reg *registry.Registry, ev fsm.Event) []fsm.Action {
	t.Helper()
	acts := c.Step(reg, ev)
	if err := reg.CheckInvariants(); err != nil {
		t.Fatalf("conn %d after %T: %v", c.Config().ID, ev, err)
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
