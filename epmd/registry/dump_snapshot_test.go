package registry_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/wire"
)

// TestDumpSnapshot pins Dump's contract, which the server's cache of the
// encoded DUMP reply relies on: the same slices while neither list
// changes, new ones as soon as either does, and returned slices never
// change afterwards.
func TestDumpSnapshot(t *testing.T) {
	g := newChecked(t, 2)
	g.mustRegister("a", 1, 5, observedNow)
	g.mustRegister("b", 2, 6, observedNow)
	g.mustUnregister("b", 2)
	a1, o1 := g.dump()
	wantA, wantO := slices.Clone(a1), slices.Clone(o1)
	same := func(x, y []wire.DumpEntry) bool {
		return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
	}
	if a2, o2 := g.dump(); !same(a1, a2) || !same(o1, o2) {
		t.Fatal("Dump changed with no change in between")
	}
	g.lookup("a")
	g.r.Register(wire.Node{Name: "a"}, 9, 9, observedNow) // a duplicate: refused
	g.r.Unregister("a", 9)                                // not its holder
	if a2, o2 := g.dump(); !same(a1, a2) || !same(o1, o2) {
		t.Fatal("Dump changed after operations that changed nothing")
	}
	steps := []func(){
		func() { g.mustRegister("c", 3, 7, observedNow) },
		func() { g.mustUnregister("c", 3) },
		func() { g.stop("a") },
		func() { g.mustRegister("b", 4, 8, observedNow) }, // a remembered name
		func() { g.mustRegister("d", 5, 9, observedNow) }, // reuses a remembered record
	}
	pa, po := a1, o1
	for i, step := range steps {
		step()
		na, no := g.dump()
		if len(na) > 0 && len(pa) > 0 && &na[0] == &pa[0] || len(no) > 0 && len(po) > 0 && &no[0] == &po[0] {
			t.Fatalf("step %d: Dump returned an old slice after a change", i)
		}
		if d := cmp.Diff(wantA, a1); d != "" {
			t.Fatalf("step %d: an earlier Dump result changed (-before +after):\n%s", i, d)
		}
		if d := cmp.Diff(wantO, o1); d != "" {
			t.Fatalf("step %d: an earlier Dump result changed (-before +after):\n%s", i, d)
		}
		pa, po = na, no
	}
}
