package registry_test

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/registry"
)

// TestCreationProperties checks, over random register/close/stop sequences,
// the properties a restarted node relies on. For every successful
// registration of a name N with creation c:
//
//  1. c >= 4, and the old-protocol value c%3+1 is in 1..3.
//  2. Every live and remembered record has a counter >= 4.
//  3. If N registered before (last creation p) and N's record is on the
//     remembered list just before this registration - that is, no new name
//     took the record over while N was away - then c is the successor of p
//     (p+1, or 4 after 2^32-1), so c != p, and the old-protocol value
//     advances one step round 1,2,3 (also across the wrap: (2^32-1)%3+1 = 1
//     and 4%3+1 = 2).
//  4. Otherwise N counts as a new name and gets either the oldest remembered
//     record's counter unchanged (more than the cap remembered) or now+1.
//     Such a name may get its previous creation back: see
//     TestCreationRepeatsAfterRecycling.
func TestCreationProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxOld := rapid.IntRange(0, 3).Draw(t, "maxRemembered")
		g := newChecked(t, maxOld)
		last := map[string]uint32{} // creation of each name's latest registration
		var conn registry.ConnID
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for range steps {
			name := rapid.SampledFrom(pool).Draw(t, "name")
			if owner, live := g.owner(name); live {
				if rapid.Bool().Draw(t, "stop") {
					if got, ok := g.stop(name); !ok || got != owner {
						t.Fatalf("Stop(%q) = %d, %v; want %d, true", name, got, ok, owner)
					}
				} else {
					g.mustUnregister(name, owner)
				}
				continue
			}
			now := drawNow(t)
			before := g.remembered()
			ownRecord := slices.ContainsFunc(before, func(e registry.Entry) bool { return e.Name == name })
			conn++
			c := g.mustRegister(name, conn, 5, now)

			if c < 4 || oldCreation(c) < 1 || oldCreation(c) > 3 {
				t.Fatalf("%q: creation %d (old-protocol %d) out of range", name, c, oldCreation(c))
			}
			for _, e := range append(g.live(), g.remembered()...) {
				if e.Creation < 4 {
					t.Fatalf("record %q has creation %d < 4", e.Name, e.Creation)
				}
			}
			p, again := last[name]
			switch {
			case again && ownRecord:
				if c == p {
					t.Fatalf("%q re-registered from its own record with its previous creation %d", name, p)
				}
				if want := nextCounter(p); c != want {
					t.Fatalf("%q re-registered: creation %d, want successor of %d = %d", name, c, p, want)
				}
				if want := oldCreation(p)%3 + 1; oldCreation(c) != want {
					t.Fatalf("%q: old-protocol value went %d -> %d, want %d", name, oldCreation(p), oldCreation(c), want)
				}
			case ownRecord:
				t.Fatalf("%q is remembered but never registered", name)
			case len(before) > maxOld:
				if c != before[0].Creation {
					t.Fatalf("new name %q: creation %d, want oldest remembered record's %d (%q)", name, c, before[0].Creation, before[0].Name)
				}
			default:
				if want := freshCounter(now); c != want {
					t.Fatalf("new name %q at %d: creation %d, want %d", name, now, c, want)
				}
			}
			last[name] = c
		}
	})
}

// TestCreationRepeatsAfterRecycling shows why property 3 above needs its
// condition: once a's record has been taken over, a is a new name again and
// can get exactly its previous creation back.
func TestCreationRepeatsAfterRecycling(t *testing.T) {
	g := newChecked(t, 0) // cap 0: any remembered record is taken over
	const now = 1795338672
	first := g.mustRegister("a", 1, 5, now)
	g.mustUnregister("a", 1)
	if c := g.mustRegister("b", 2, 5, now+10); c != first {
		t.Fatalf("b took over a's record: creation %d, want %d", c, first)
	}
	g.mustUnregister("b", 2)
	if c := g.mustRegister("a", 3, 5, now+20); c != first {
		t.Fatalf("a took over b's (formerly a's) record: creation %d, want %d again", c, first)
	}
}
