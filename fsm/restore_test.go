package fsm

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// A restored connection steps exactly as the one that registered.
func TestRestoreStepsAsOriginal(t *testing.T) {
	for _, ev := range []Event{PeerClosed{}, Data{}, Timeout{}} {
		orig := registry.New(registry.MaxRemembered)
		c := New(Config{ID: 7, Fd: 9, Local: true})
		req := &wire.Alive2Req{Node: wire.Node{Name: "a", Port: 5000, Type: 77, High: 6, Low: 5}}
		c.Step(orig, Received{Req: req, Now: 1})
		if c.State() != Registered {
			t.Fatalf("state %v after ALIVE2", c.State())
		}
		restoredReg, err := registry.Import(orig.Export(), registry.MaxRemembered)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Restore(Config{ID: 7, Fd: 9, Local: true}, Registered, "a")
		if err != nil {
			t.Fatal(err)
		}
		want := c.Step(orig, ev)
		got := r.Step(restoredReg, ev)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%T: actions differ (-original +restored):\n%s", ev, diff)
		}
		if diff := cmp.Diff(orig.Export(), restoredReg.Export()); diff != "" {
			t.Errorf("%T: registries differ (-original +restored):\n%s", ev, diff)
		}
	}
}

func TestRestoreRefusesOtherStates(t *testing.T) {
	for _, s := range []State{AwaitingRequest, Closed, State(9)} {
		if _, err := Restore(Config{ID: 1}, s, ""); err == nil {
			t.Errorf("Restore(%v) succeeded", s)
		}
	}
	if _, err := Restore(Config{ID: 1}, Refused, "x"); err == nil {
		t.Error("a refused connection with a name was restored")
	}
	c, err := Restore(Config{ID: 1}, Refused, "")
	if err != nil || c.State() != Refused {
		t.Fatalf("Restore(Refused) = %v, %v", c, err)
	}
	if acts := c.Step(registry.New(5), PeerClosed{}); len(acts) != 1 {
		t.Errorf("refused socket's close: %v", acts)
	}
}
