package registry_test

import (
	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// tb is the part of *testing.T, *testing.B and *rapid.T the helpers need.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checked wraps a Registry so that every call, query or update, is followed
// by CheckInvariants.
type checked struct {
	t tb
	r *registry.Registry
}

func newChecked(t tb, maxRemembered int) *checked {
	t.Helper()
	g := &checked{t: t, r: registry.New(maxRemembered)}
	g.invariants("New")
	return g
}

func (g *checked) invariants(op string) {
	g.t.Helper()
	if err := g.r.CheckInvariants(); err != nil {
		g.t.Fatalf("after %s: %v", op, err)
	}
}

func (g *checked) register(n wire.Node, owner registry.ConnID, fd int, now int64) (uint32, bool) {
	g.t.Helper()
	c, ok := g.r.Register(n, owner, fd, now)
	g.invariants("Register(" + n.Name + ")")
	return c, ok
}

// mustRegister registers a node called name (port, High 6) and fails the
// test if the registry refuses it.
func (g *checked) mustRegister(name string, owner registry.ConnID, fd int, now int64) uint32 {
	g.t.Helper()
	c, ok := g.register(node(name, 5000), owner, fd, now)
	if !ok {
		g.t.Fatalf("Register(%q) refused", name)
	}
	return c
}

func (g *checked) unregister(name string, owner registry.ConnID) bool {
	g.t.Helper()
	ok := g.r.Unregister(name, owner)
	g.invariants("Unregister(" + name + ")")
	return ok
}

// mustUnregister unregisters name as owner and fails the test if nothing was
// unregistered.
func (g *checked) mustUnregister(name string, owner registry.ConnID) {
	g.t.Helper()
	if !g.unregister(name, owner) {
		g.t.Fatalf("Unregister(%q, %d) = false", name, owner)
	}
}

func (g *checked) stop(name string) (registry.ConnID, bool) {
	g.t.Helper()
	o, ok := g.r.Stop(name)
	g.invariants("Stop(" + name + ")")
	return o, ok
}

func (g *checked) lookup(name string) (wire.Node, bool) {
	g.t.Helper()
	n, ok := g.r.Lookup(name)
	g.invariants("Lookup(" + name + ")")
	return n, ok
}

func (g *checked) owner(name string) (registry.ConnID, bool) {
	g.t.Helper()
	o, ok := g.r.Owner(name)
	g.invariants("Owner(" + name + ")")
	return o, ok
}

func (g *checked) names() []wire.NameEntry {
	g.t.Helper()
	s := g.r.Names()
	g.invariants("Names")
	return s
}

func (g *checked) live() []registry.Entry {
	g.t.Helper()
	s := g.r.Live()
	g.invariants("Live")
	return s
}

func (g *checked) remembered() []registry.Entry {
	g.t.Helper()
	s := g.r.Remembered()
	g.invariants("Remembered")
	return s
}

func (g *checked) dump() (active, old []wire.DumpEntry) {
	g.t.Helper()
	active, old = g.r.Dump()
	g.invariants("Dump")
	return active, old
}

func (g *checked) len() int {
	g.t.Helper()
	n := g.r.Len()
	g.invariants("Len")
	return n
}

func (g *checked) rememberedLen() int {
	g.t.Helper()
	n := g.r.RememberedLen()
	g.invariants("RememberedLen")
	return n
}

// rememberedNames lists the remembered records' names, oldest first.
func (g *checked) rememberedNames() []string {
	g.t.Helper()
	var s []string
	for _, e := range g.remembered() {
		s = append(s, e.Name)
	}
	return s
}

// rememberedCreation returns the creation counter of the remembered record
// called name.
func (g *checked) rememberedCreation(name string) (uint32, bool) {
	g.t.Helper()
	for _, e := range g.remembered() {
		if e.Name == name {
			return e.Creation, true
		}
	}
	return 0, false
}

// node returns a normal OTP node registration called name.
func node(name string, port uint16) wire.Node {
	return wire.Node{Name: name, Port: port, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}
}

// oldCreation is the value an ALIVE2_RESP ('y', HighestVersion < 6) carries
// for a record's counter: counter % 3 + 1 (facts 6.3, "Reply value").
func oldCreation(counter uint32) uint16 { return uint16(counter%3 + 1) }
