package registry_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// TestExportImportContinues: a registry imported from another's export, at
// any point of any history, is indistinguishable from it from then on:
// export -> import -> export is the identity, and every later operation
// (creations included) gives the same result on both, as if the daemon had
// never restarted.
func TestExportImportContinues(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxOld := rapid.IntRange(0, 3).Draw(t, "maxRemembered")
		a := registry.New(maxOld)
		var b *registry.Registry // the imported copy, once made
		var conn registry.ConnID
		names := []string{"a", "b", "c", "", "d"}
		owners := map[string]registry.ConnID{}
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for i := range steps {
			if b == nil && rapid.IntRange(0, 9).Draw(t, "handover") == 0 || b != nil && rapid.IntRange(0, 19).Draw(t, "again") == 0 {
				// The first handover is from the never-restarted
				// registry; later ones chain from the last copy.
				from := a
				if b != nil {
					from = b
				}
				st := from.Export()
				nb, err := registry.Import(st, maxOld)
				if err != nil {
					t.Fatalf("step %d: Import of an export: %v", i, err)
				}
				if err := nb.CheckInvariants(); err != nil {
					t.Fatalf("step %d: imported registry: %v", i, err)
				}
				if diff := cmp.Diff(st, nb.Export()); diff != "" {
					t.Fatalf("step %d: export -> import -> export (-first +second):\n%s", i, diff)
				}
				b = nb
			}
			name := rapid.SampledFrom(names).Draw(t, "name")
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				n := drawNode(t, name)
				conn++
				now := drawNow(t)
				c1, ok1 := a.Register(n, conn, 7, now)
				if b != nil {
					c2, ok2 := b.Register(n, conn, 7, now)
					if c1 != c2 || ok1 != ok2 {
						t.Fatalf("step %d: Register(%q) = %d, %v before the handover, %d, %v after", i, name, c1, ok1, c2, ok2)
					}
				}
				if ok1 {
					owners[name] = conn
				}
			case 1:
				ok1 := a.Unregister(name, owners[name])
				if b != nil {
					if ok2 := b.Unregister(name, owners[name]); ok1 != ok2 {
						t.Fatalf("step %d: Unregister(%q) = %v, %v", i, name, ok1, ok2)
					}
				}
			case 2:
				o1, ok1 := a.Stop(name)
				if b != nil {
					if o2, ok2 := b.Stop(name); o1 != o2 || ok1 != ok2 {
						t.Fatalf("step %d: Stop(%q) = %d, %v and %d, %v", i, name, o1, ok1, o2, ok2)
					}
				}
			}
			if b != nil {
				if diff := cmp.Diff(a.Export(), b.Export()); diff != "" {
					t.Fatalf("step %d: states differ (-never restarted +handed over):\n%s", i, diff)
				}
				if diff := cmp.Diff(a.Names(), b.Names()); diff != "" {
					t.Fatalf("step %d: NAMES differ:\n%s", i, diff)
				}
			}
		}
	})
}

// TestImportRejects: states no registry can be in are refused.
func TestImportRejects(t *testing.T) {
	node := func(name string, creation uint32) registry.Entry {
		return registry.Entry{Node: wire.Node{Name: name, Port: 1, Type: wire.NodeNormal, High: 6, Low: 5}, Owner: 1, Creation: creation}
	}
	for _, tc := range []struct {
		name string
		st   registry.State
	}{
		{"duplicate live", registry.State{Live: []registry.Entry{node("a", 5), node("a", 6)}}},
		{"live and remembered", registry.State{Live: []registry.Entry{node("a", 5)}, Remembered: []registry.Entry{node("a", 6)}}},
		{"creation 3", registry.State{Remembered: []registry.Entry{node("a", 3)}}},
		{"NUL", registry.State{Live: []registry.Entry{node("a\x00b", 5)}}},
		{"bad UTF-8", registry.State{Live: []registry.Entry{node("\xff", 5)}}},
		{"256 characters", registry.State{Live: []registry.Entry{node(strings.Repeat("x", 256), 5)}}},
		{"extra too long", registry.State{Live: []registry.Entry{{Node: wire.Node{Name: "a", Extra: strings.Repeat("x", wire.MaxSymLen+1)}, Creation: 5}}}},
	} {
		if _, err := registry.Import(tc.st, registry.MaxRemembered); err == nil {
			t.Errorf("%s: imported", tc.name)
		}
	}
	g, err := registry.Import(registry.State{Live: []registry.Entry{node("", 4)}}, registry.MaxRemembered)
	if err != nil || g.Len() != 1 {
		t.Errorf("the empty name (legal): %v", err)
	}
}
