package registry_test

import (
	"fmt"
	"testing"

	"github.com/gopmd/gopmd/epmd/registry"
)

// The benchmarks check the invariants once, after the timed loop, so that
// the check does not dominate what is measured.

func BenchmarkLookup(b *testing.B) {
	g := newChecked(b, registry.MaxRemembered)
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("node%d", i)
		g.mustRegister(names[i], registry.ConnID(i+1), i+5, observedNow)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := g.r.Lookup(names[i%len(names)]); !ok {
			b.Fatalf("Lookup(%q) failed", names[i%len(names)])
		}
	}
	b.StopTimer()
	g.invariants("benchmark")
}

func BenchmarkRegisterUnregister(b *testing.B) {
	for _, bc := range []struct {
		name  string
		names int // distinct names cycled through
	}{
		{"same_name", 1}, // the name's own record every time
		{"rotating_names", 2 * registry.MaxRemembered}, // mostly taking over the oldest record
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := newChecked(b, registry.MaxRemembered)
			nodes := make([]string, bc.names)
			for i := range nodes {
				nodes[i] = fmt.Sprintf("node%d", i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				owner := registry.ConnID(i + 1)
				if _, ok := g.r.Register(node(nodes[i%len(nodes)], 5000), owner, 5, observedNow); !ok {
					b.Fatal("Register refused")
				}
				if !g.r.Unregister(nodes[i%len(nodes)], owner) {
					b.Fatal("Unregister failed")
				}
			}
			b.StopTimer()
			g.invariants("benchmark")
		})
	}
}
