package fsm_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// TestProbeOwner pins the fast-restart rule (erlang/otp#11083, differences
// #11): a duplicate ALIVE2 first asks the server to probe the holder.
func TestProbeOwner(t *testing.T) {
	cfg := func(id registry.ConnID) fsm.Config {
		return fsm.Config{ID: id, Fd: int(id) + 4, Local: true, Port: 4369}
	}
	setup := func(t *testing.T) (*registry.Registry, *fsm.Conn, *fsm.Conn) {
		reg := registry.New(registry.MaxRemembered)
		holder := fsm.New(cfg(1))
		step(t, holder, reg, alive2(node("n", 1000), 100))
		return reg, holder, fsm.New(cfg(2))
	}

	t.Run("duplicate asks first", func(t *testing.T) {
		reg, _, c := setup(t)
		got := stepChecked(t, c, reg, alive2(node("n", 2000), 200))
		if diff := cmp.Diff([]fsm.Action{fsm.ProbeOwner{ID: 1}}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if c.State() != fsm.AwaitingRequest {
			t.Errorf("state %v while waiting for the probe", c.State())
		}
	})
	t.Run("gone holder loses the name", func(t *testing.T) {
		reg, holder, c := setup(t)
		stepChecked(t, c, reg, alive2(node("n", 2000), 200))
		got := stepChecked(t, c, reg, fsm.OwnerProbed{Gone: true})
		want := []fsm.Action{
			fsm.UnregisteredNode{Name: "n"},
			fsm.CloseConn{ID: 1},
			fsm.RegisteredNode{Node: node("n", 2000), Creation: 102},
			fsm.Send{Resp: &wire.Alive2XResp{Creation: 102}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// The holder notices its socket closed later: nothing to undo.
		got = step(t, holder, reg, fsm.PeerClosed{})
		if diff := cmp.Diff([]fsm.Action{fsm.Close{Reason: fsm.ReasonPeerClosed}}, got); diff != "" {
			t.Errorf("holder close (-want +got):\n%s", diff)
		}
		if owner, _ := reg.Owner("n"); owner != 2 {
			t.Errorf("owner %d, want the newcomer", owner)
		}
	})
	t.Run("live holder makes a duplicate", func(t *testing.T) {
		reg, _, c := setup(t)
		stepChecked(t, c, reg, alive2(node("n", 2000), 200))
		got := stepChecked(t, c, reg, fsm.OwnerProbed{Gone: false})
		if len(got) != 2 || c.State() != fsm.Refused {
			t.Errorf("got %#v in %v, want a refusal", got, c.State())
		}
	})
	t.Run("holder closed between ask and answer", func(t *testing.T) {
		reg, holder, c := setup(t)
		stepChecked(t, c, reg, alive2(node("n", 2000), 200))
		step(t, holder, reg, fsm.PeerClosed{})
		got := stepChecked(t, c, reg, fsm.OwnerProbed{Gone: true})
		// The name was remembered in between, so it comes back with +1
		// and no unregistration of our own.
		want := []fsm.Action{
			fsm.RegisteredNode{Node: node("n", 2000), Creation: 102},
			fsm.Send{Resp: &wire.Alive2XResp{Creation: 102}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("answer to no question", func(t *testing.T) {
		reg, holder, c := setup(t)
		if got := stepChecked(t, c, reg, fsm.OwnerProbed{Gone: true}); got != nil {
			t.Errorf("awaiting: %#v", got)
		}
		if got := stepChecked(t, holder, reg, fsm.OwnerProbed{Gone: true}); got != nil {
			t.Errorf("registered: %#v", got)
		}
		if _, ok := reg.Lookup("n"); !ok {
			t.Error("a stray answer removed a registration")
		}
	})
	t.Run("other event abandons the probe", func(t *testing.T) {
		reg, _, c := setup(t)
		stepChecked(t, c, reg, alive2(node("n", 2000), 200))
		got := stepChecked(t, c, reg, fsm.Timeout{})
		if diff := cmp.Diff([]fsm.Action{fsm.Close{Reason: fsm.ReasonTimeout}}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if got := stepChecked(t, c, reg, fsm.OwnerProbed{Gone: true}); got != nil {
			t.Errorf("closed conn answered: %#v", got)
		}
		if owner, _ := reg.Owner("n"); owner != 1 {
			t.Errorf("owner %d, want the holder", owner)
		}
	})
}

func TestOneShot(t *testing.T) {
	for _, req := range []wire.Request{&wire.PortPlease2Req{Name: "a"}, &wire.NamesReq{}, &wire.DumpReq{}, &wire.KillReq{}, &wire.StopReq{Name: "a"}} {
		if !fsm.OneShot(req) {
			t.Errorf("OneShot(%T) = false", req)
		}
		// Executing it must indeed close the connection.
		acts := step(t, fsm.New(fsm.Config{ID: 1, Local: true, Relaxed: true}), registry.New(1), fsm.Received{Req: req})
		if _, ok := acts[len(acts)-1].(fsm.Close); !ok {
			t.Errorf("%T: last action %#v, want Close", req, acts[len(acts)-1])
		}
	}
	if fsm.OneShot(&wire.Alive2Req{Node: node("a", 1)}) {
		t.Error("OneShot(ALIVE2) = true")
	}
}
