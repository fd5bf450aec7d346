package fsm_test

import (
	"strconv"
	"testing"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// BenchmarkStepLookup is one PORT_PLEASE2 connection against a registry
// of 1000 nodes: accept, look up, reply, close.
func BenchmarkStepLookup(b *testing.B) {
	reg := registry.New(registry.MaxRemembered)
	for i := range 1000 {
		c := fsm.New(fsm.Config{ID: registry.ConnID(i + 1), Fd: i + 5, Local: true})
		if acts := c.Step(reg, alive2(node("node"+strconv.Itoa(i), uint16(i+1)), 1000)); len(acts) != 2 {
			b.Fatalf("register node%d: %#v", i, acts)
		}
	}
	if err := reg.CheckInvariants(); err != nil {
		b.Fatal(err)
	}
	ev := port2("node500")
	cfg := fsm.Config{ID: 5000, Fd: 5000, Port: wire.DefaultPort}
	b.ReportAllocs()
	for b.Loop() {
		acts := fsm.New(cfg).Step(reg, ev)
		if len(acts) != 2 {
			b.Fatalf("lookup: %#v", acts)
		}
	}
}

// BenchmarkStepRegister is one node's registration lifecycle: ALIVE2 on a
// new connection, then the peer closing it. The name is reused, so its
// remembered record comes back each time and the registry stays small.
func BenchmarkStepRegister(b *testing.B) {
	reg := registry.New(registry.MaxRemembered)
	for i := range 100 {
		c := fsm.New(fsm.Config{ID: registry.ConnID(i + 1), Fd: i + 5, Local: true})
		c.Step(reg, alive2(node("other"+strconv.Itoa(i), uint16(i+1)), 1000))
	}
	ev := alive2(node("alpha", 5555), 1000)
	id := registry.ConnID(1000)
	b.ReportAllocs()
	for b.Loop() {
		id++
		c := fsm.New(fsm.Config{ID: id, Fd: 7, Local: true})
		if acts := c.Step(reg, ev); len(acts) != 2 {
			b.Fatalf("register: %#v", acts)
		}
		if acts := c.Step(reg, fsm.PeerClosed{}); len(acts) != 2 {
			b.Fatalf("close: %#v", acts)
		}
	}
	if err := reg.CheckInvariants(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStepLookupReset is BenchmarkStepLookup as the server's event
// loop does it: one Conn, Reset for each connection, and the request
// stepped with StepRequest. It allocates nothing.
func BenchmarkStepLookupReset(b *testing.B) {
	reg := registry.New(registry.MaxRemembered)
	for i := range 1000 {
		c := fsm.New(fsm.Config{ID: registry.ConnID(i + 1), Fd: i + 5, Local: true})
		c.Step(reg, alive2(node("node"+strconv.Itoa(i), uint16(i+1)), 1000))
	}
	req := &wire.PortPlease2Req{Name: "node500"}
	c := fsm.New(fsm.Config{})
	cfg := fsm.Config{ID: 5000, Fd: 5000, Port: wire.DefaultPort}
	b.ReportAllocs()
	for b.Loop() {
		c.Reset(cfg)
		if acts := c.StepRequest(reg, req, 1000); len(acts) != 2 {
			b.Fatalf("lookup: %#v", acts)
		}
	}
}
