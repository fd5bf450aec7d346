package fsm_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// TestStepRequestIsStep checks that StepRequest does what Step does with
// the same request as a Received event, from every state a connection can
// be in when a request comes, on twin connections and registries.
func TestStepRequestIsStep(t *testing.T) {
	reqs := []wire.Request{
		&wire.PortPlease2Req{Name: "held"},
		&wire.PortPlease2Req{Name: "absent"},
		&wire.PortPlease2Req{Name: strings.Repeat("x", 256)},
		&wire.NamesReq{},
		&wire.DumpReq{},
		&wire.KillReq{},
		&wire.StopReq{Name: "held"},
		alive2(node("new", 7000), 1000).Req,
		alive2(node("held", 7001), 1000).Req,
	}
	// Where the connection is before the request: fresh, registered,
	// closed.
	setups := map[string]func(*fsm.Conn, *registry.Registry){
		"fresh":      func(*fsm.Conn, *registry.Registry) {},
		"registered": func(c *fsm.Conn, reg *registry.Registry) { c.Step(reg, alive2(node("mine", 7002), 1000)) },
		"closed":     func(c *fsm.Conn, reg *registry.Registry) { c.Step(reg, fsm.Timeout{}) },
	}
	for _, local := range []bool{true, false} {
		for _, relaxed := range []bool{true, false} {
			for setupName, setup := range setups {
				for _, req := range reqs {
					cfg := fsm.Config{ID: 2, Fd: 9, Local: local, Relaxed: relaxed, Port: 4369}
					twin := func() (*fsm.Conn, *registry.Registry) {
						reg := registry.New(registry.MaxRemembered)
						holder := fsm.New(fsm.Config{ID: 1, Fd: 8, Local: true})
						holder.Step(reg, alive2(node("held", 4242), 1000))
						c := fsm.New(cfg)
						setup(c, reg)
						return c, reg
					}
					a, regA := twin()
					b, regB := twin()
					want := a.Step(regA, fsm.Received{Req: req, Now: 2000})
					got := b.StepRequest(regB, req, 2000)
					name := setupName + "/" + req.Tag().String()
					if d := cmp.Diff(want, got); d != "" {
						t.Errorf("%s local=%v relaxed=%v: actions differ (-Step +StepRequest):\n%s", name, local, relaxed, d)
					}
					if a.State() != b.State() {
						t.Errorf("%s: state %v after Step, %v after StepRequest", name, a.State(), b.State())
					}
					if d := cmp.Diff(regA.Live(), regB.Live()); d != "" {
						t.Errorf("%s: registries differ:\n%s", name, d)
					}
				}
			}
		}
	}
}

// TestResetLookupAllocatesNothing pins what the server's look-up path
// relies on: a Conn that is Reset and used again answers a PORT_PLEASE2,
// found or not, without allocating, and Reset leaves nothing of the
// connection before it.
func TestResetLookupAllocatesNothing(t *testing.T) {
	reg := registry.New(registry.MaxRemembered)
	fsm.New(fsm.Config{ID: 1, Local: true}).Step(reg, alive2(node("held", 4242), 1000))
	c := fsm.New(fsm.Config{ID: 2})
	found, absent := &wire.PortPlease2Req{Name: "held"}, &wire.PortPlease2Req{Name: "absent"}
	id := registry.ConnID(2)
	allocs := testing.AllocsPerRun(100, func() {
		for _, req := range []*wire.PortPlease2Req{found, absent} {
			id++
			c.Reset(fsm.Config{ID: id, Fd: 9, Port: 4369})
			if acts := c.StepRequest(reg, req, 1000); len(acts) != 2 {
				t.Fatalf("look-up of %s: %#v", req.Name, acts)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("a look-up on a reset Conn allocates %.1f times, want 0", allocs)
	}

	// The reply is the right one, each time.
	for _, tc := range []struct {
		req  *wire.PortPlease2Req
		want wire.Port2Resp
	}{{found, wire.Port2Resp{Node: node("held", 4242)}}, {absent, wire.Port2Resp{Result: 1}}} {
		c.Reset(fsm.Config{ID: 99})
		acts := c.StepRequest(reg, tc.req, 1000)
		send, ok := acts[0].(fsm.Send)
		if !ok {
			t.Fatalf("%s: first action %#v, want a Send", tc.req.Name, acts[0])
		}
		if d := cmp.Diff(&tc.want, send.Resp); d != "" {
			t.Errorf("%s: reply (-want +got):\n%s", tc.req.Name, d)
		}
		if d := cmp.Diff(fsm.Close{Reason: fsm.ReasonDone}, acts[1]); d != "" {
			t.Errorf("%s: close (-want +got):\n%s", tc.req.Name, d)
		}
	}

	// Reset forgets the state and the registration of the connection
	// before: a registered Conn, once Reset, is a new one.
	r := fsm.New(fsm.Config{ID: 500, Local: true})
	r.Step(reg, alive2(node("mine", 4000), 1000))
	r.Reset(fsm.Config{ID: 501})
	if r.State() != fsm.AwaitingRequest || r.Config().ID != 501 {
		t.Errorf("after Reset: state %v, id %d", r.State(), r.Config().ID)
	}
	if _, held := r.Name(); held {
		t.Error("after Reset the Conn still holds a name")
	}
}
