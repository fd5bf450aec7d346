package registry_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// Unix time of the registration observed in facts 6.3.
const observedNow = 1795338672

func TestCreationNewName(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	if c := g.mustRegister("probe1", 1, 5, observedNow); c != observedNow+1 {
		t.Fatalf("new name at %d: creation %d, want %d", observedNow, c, observedNow+1)
	}
}

// Two different new names registered in the same second share the creation
// (facts 6.3): the counter comes from the clock, not from a sequence.
func TestCreationSameSecondShared(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	a := g.mustRegister("a", 1, 5, observedNow)
	b := g.mustRegister("b", 2, 6, observedNow)
	if a != observedNow+1 || b != a {
		t.Fatalf("same-second creations = %d, %d; want both %d", a, b, observedNow+1)
	}
}

// Successive re-registrations of one name give t+1, t+2, t+3, t+4 (facts
// 6.3), whatever the clock says at each re-registration.
func TestCreationReregisterSequence(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	var got []uint32
	for i := range 4 {
		owner := registry.ConnID(i + 1)
		got = append(got, g.mustRegister("probe1", owner, 5, observedNow+int64(100*i)))
		g.mustUnregister("probe1", owner)
	}
	want := []uint32{observedNow + 1, observedNow + 2, observedNow + 3, observedNow + 4}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("creations (-want +got):\n%s", d)
	}
}

// TestCreationMinimumAndWrap: counters below 4 become 4, for a new name
// (time+1, truncated to 32 bits) and for a re-registration (counter+1,
// wrapping at 2^32).
func TestCreationMinimumAndWrap(t *testing.T) {
	for _, tc := range []struct {
		now        int64
		first, two uint32 // creation when new, then when re-registered
	}{
		{0, 4, 5},
		{2, 4, 5},
		{3, 4, 5},
		{4, 5, 6},
		{1<<32 - 3, 1<<32 - 2, 1<<32 - 1},
		{1<<32 - 2, 1<<32 - 1, 4}, // re-registration wraps 2^32-1 -> 0 -> 4
		{1<<32 - 1, 4, 5},         // time+1 wraps to 0 -> 4
		{1 << 32, 4, 5},           // truncated to 0, +1 = 1 -> 4
		{1<<32 + 10, 11, 12},
		{-1, 4, 5}, // truncated to 2^32-1
	} {
		t.Run(fmt.Sprint(tc.now), func(t *testing.T) {
			g := newChecked(t, registry.MaxRemembered)
			if c := g.mustRegister("n", 1, 5, tc.now); c != tc.first {
				t.Fatalf("new at %d: creation %d, want %d", tc.now, c, tc.first)
			}
			g.mustUnregister("n", 1)
			if c := g.mustRegister("n", 2, 5, tc.now); c != tc.two {
				t.Fatalf("re-registered: creation %d, want %d", c, tc.two)
			}
		})
	}
}

// The old-protocol reply (HighestVersion < 6) carries counter%3+1. Facts 6.3
// observed one name re-registered alternately as v6 and v5:
// 0x6b02b1d5, 3, 0x6b02b1d7, 2 - one counter, read two ways.
func TestCreationOldProtocolValue(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	var got []uint32
	for i := range 4 {
		owner := registry.ConnID(i + 1)
		c := g.mustRegister("probe", owner, 5, 0x6b02b1d4)
		if i%2 == 1 { // v5 request: the reply carries the 1..3 value
			c = uint32(oldCreation(c))
		}
		got = append(got, c)
		g.mustUnregister("probe", owner)
	}
	if d := cmp.Diff([]uint32{0x6b02b1d5, 3, 0x6b02b1d7, 2}, got); d != "" {
		t.Fatalf("alternating v6/v5 creations (-want +got):\n%s", d)
	}

	// Observed v5 sequence 2,3,1,2,3,1: the counter of a name registered
	// at observedNow (observedNow+1 = 1 mod 3), re-registered five times.
	var old []uint16
	for i := range 6 {
		owner := registry.ConnID(10 + i)
		old = append(old, oldCreation(g.mustRegister("v5", owner, 5, observedNow)))
		g.mustUnregister("v5", owner)
	}
	if d := cmp.Diff([]uint16{2, 3, 1, 2, 3, 1}, old); d != "" {
		t.Fatalf("v5 creations (-want +got):\n%s", d)
	}
}

// TestDebugCapRecycling reconstructs the debug-mode (cap 5) observation of
// facts 6.3: "n7 got n1's creation; new1 got n2's; re-registering the
// evicted n1 got n3's".
//
// The rule (6.4): a new name takes over the oldest remembered record, counter
// unchanged, only when MORE than 5 records are remembered. So for n7 to take
// n1's record, six records (n1..n6, n1 the oldest) must have been remembered
// when n7 registered. For new1 to take n2's next, n7 must have gone away
// before new1 registered (n2..n6 alone are only 5; with n7 they are 6). And
// for n1 - by then a new name, its record being n7's - to take n3's, new1
// must have gone away too (n3..n6, n7, new1 = 6). That is n1..n6 each
// registering and going away, then n7, new1 and n1 doing the same, one after
// the other. The nodes register at distinct seconds so that each record's
// creation identifies it.
func TestDebugCapRecycling(t *testing.T) {
	g := newChecked(t, registry.DebugMaxRemembered)
	const base = 1795338000
	cr := map[string]uint32{}
	var conn registry.ConnID
	cycle := func(name string, now int64) uint32 {
		t.Helper()
		conn++
		c := g.mustRegister(name, conn, 5, now)
		g.mustUnregister(name, conn)
		return c
	}
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("n%d", i)
		if cr[name] = cycle(name, base+int64(10*i)); cr[name] != base+uint32(10*i)+1 {
			t.Fatalf("%s: creation %d, want a fresh record's %d", name, cr[name], base+10*i+1)
		}
	}
	if d := cmp.Diff([]string{"n1", "n2", "n3", "n4", "n5", "n6"}, g.rememberedNames()); d != "" {
		t.Fatalf("remembered before n7 (-want +got):\n%s", d)
	}
	if c := cycle("n7", base+100); c != cr["n1"] {
		t.Fatalf("n7: creation %d, want n1's %d", c, cr["n1"])
	}
	if c := cycle("new1", base+200); c != cr["n2"] {
		t.Fatalf("new1: creation %d, want n2's %d", c, cr["n2"])
	}
	if c := g.mustRegister("n1", 100, 5, base+300); c != cr["n3"] {
		t.Fatalf("evicted n1 re-registered: creation %d, want n3's %d", c, cr["n3"])
	}
	if d := cmp.Diff([]string{"n4", "n5", "n6", "n7", "new1"}, g.rememberedNames()); d != "" {
		t.Fatalf("remembered at the end (-want +got):\n%s", d)
	}
	// n7 kept n1's old record, so its own re-registration continues that counter.
	if c := g.mustRegister("n7", 101, 5, base+400); c != cr["n1"]+1 {
		t.Fatalf("n7 re-registered: creation %d, want %d", c, cr["n1"]+1)
	}
}

// TestCapIsExclusive: with exactly cap records remembered, a new name still
// gets a fresh record; only cap+1 remembered records trigger a takeover.
func TestCapIsExclusive(t *testing.T) {
	g := newChecked(t, registry.DebugMaxRemembered)
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("n%d", i)
		g.mustRegister(name, registry.ConnID(i), 5, int64(1000*i))
		g.mustUnregister(name, registry.ConnID(i))
	}
	if c := g.mustRegister("x", 10, 5, 99999); c != 100000 {
		t.Fatalf("new name with 5 remembered: creation %d, want fresh 100000", c)
	}
	if n := g.rememberedLen(); n != 5 {
		t.Fatalf("RememberedLen() = %d, want 5 (nothing taken over)", n)
	}
}

// TestThousandAndThreeCycles: facts 6.4 saw 1003 sequential register/close
// cycles (m1..m1003) against the stock daemon (cap 1000) leave 1002
// remembered records with only m1 evicted.
//
// A takeover needs MORE than 1000 remembered when a new name registers. If
// every close were handled before the next registration, m_i would see i-1
// remembered records: m1002 (1001 > 1000) would take m1's record and m1003
// (again 1001) m2's, leaving 1001 records - not what was observed. The
// observation matches the daemon handling each registration just before
// the previous node's close (the close was still pending): m_i then sees
// i-2 records, so m1002 sees 1000 (fresh record) and only m1003 sees 1001
// and takes m1's record. After the last close all 1003 names but m1 are
// remembered: 1002 records. Both orders are pinned here; the first is the
// one stock epmd showed.
func TestThousandAndThreeCycles(t *testing.T) {
	const n = 1003
	name := func(i int) string { return fmt.Sprintf("m%d", i) }
	now := func(i int) int64 { return observedNow + int64(i) }
	wantNames := func(from int) []string {
		var s []string
		for i := from; i <= n; i++ {
			s = append(s, name(i))
		}
		return s
	}

	t.Run("close_after_next_register", func(t *testing.T) {
		g := newChecked(t, registry.MaxRemembered)
		first := g.mustRegister(name(1), 1, 5, now(1))
		for i := 2; i <= n; i++ {
			c := g.mustRegister(name(i), registry.ConnID(i), 5, now(i))
			want := uint32(now(i)) + 1
			if i == n {
				want = first // took over m1's record
			}
			if c != want {
				t.Fatalf("%s: creation %d, want %d", name(i), c, want)
			}
			g.mustUnregister(name(i-1), registry.ConnID(i-1))
		}
		g.mustUnregister(name(n), n)
		if got := g.rememberedLen(); got != 1002 {
			t.Fatalf("RememberedLen() = %d, want 1002", got)
		}
		if d := cmp.Diff(wantNames(2), g.rememberedNames()); d != "" {
			t.Fatalf("remembered (-want +got):\n%s", d)
		}
	})

	t.Run("close_before_next_register", func(t *testing.T) {
		g := newChecked(t, registry.MaxRemembered)
		var cr []uint32
		for i := 1; i <= n; i++ {
			cr = append(cr, g.mustRegister(name(i), registry.ConnID(i), 5, now(i)))
			g.mustUnregister(name(i), registry.ConnID(i))
		}
		if cr[1001] != cr[0] || cr[1002] != cr[1] {
			t.Fatalf("m1002, m1003 creations %d, %d; want m1's %d, m2's %d", cr[1001], cr[1002], cr[0], cr[1])
		}
		if got := g.rememberedLen(); got != 1001 {
			t.Fatalf("RememberedLen() = %d, want 1001", got)
		}
		if d := cmp.Diff(wantNames(3), g.rememberedNames()); d != "" {
			t.Fatalf("remembered (-want +got):\n%s", d)
		}
	})
}

// NAMES lists registered nodes newest first (facts 4.3), and a node that
// re-registers moves to the front.
func TestNamesNewestFirst(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	g.register(node("alpha", 5555), 1, 5, observedNow)
	g.register(node("beta", 6666), 2, 6, observedNow)
	g.register(node("gamma", 7777), 3, 7, observedNow)
	want := []wire.NameEntry{{Name: "gamma", Port: 7777}, {Name: "beta", Port: 6666}, {Name: "alpha", Port: 5555}}
	if d := cmp.Diff(want, g.names()); d != "" {
		t.Fatalf("Names (-want +got):\n%s", d)
	}
	g.mustUnregister("beta", 2)
	g.register(node("beta", 6667), 4, 6, observedNow)
	want = []wire.NameEntry{{Name: "beta", Port: 6667}, {Name: "gamma", Port: 7777}, {Name: "alpha", Port: 5555}}
	if d := cmp.Diff(want, g.names()); d != "" {
		t.Fatalf("Names after beta re-registered (-want +got):\n%s", d)
	}
}

// DUMP: registered newest first, then remembered oldest first, each with the
// last port and fd it had (facts 4.4).
func TestDumpOrder(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	for i, name := range []string{"a", "b", "c", "d", "e"} {
		g.register(node(name, uint16(5000+i)), registry.ConnID(i+1), 5+i, observedNow)
	}
	g.mustUnregister("d", 4)
	g.mustUnregister("b", 2)
	if o, ok := g.stop("e"); !ok || o != 5 {
		t.Fatalf("Stop(e) = %d, %v; want 5, true", o, ok)
	}
	active, old := g.dump()
	wantActive := []wire.DumpEntry{{Name: "c", Port: 5002, Fd: 7}, {Name: "a", Port: 5000, Fd: 5}}
	wantOld := []wire.DumpEntry{{Name: "d", Port: 5003, Fd: 8}, {Name: "b", Port: 5001, Fd: 6}, {Name: "e", Port: 5004, Fd: 9}}
	if d := cmp.Diff(wantActive, active); d != "" {
		t.Fatalf("Dump active (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantOld, old); d != "" {
		t.Fatalf("Dump old (-want +got):\n%s", d)
	}
}

// Duplicates are registered names only (facts 6.2): refused while live,
// accepted once unregistered. A refusal changes nothing.
func TestDuplicate(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	first := node("dup", 5000)
	c := g.mustRegister("dup", 1, 5, observedNow)
	second := node("dup", 6000)
	for _, owner := range []registry.ConnID{2, 1} { // another connection, and the holder itself
		if got, ok := g.register(second, owner, 6, observedNow+1); ok || got != 0 {
			t.Fatalf("duplicate Register by conn %d = %d, %v; want 0, false", owner, got, ok)
		}
	}
	if n, ok := g.lookup("dup"); !ok || n != first {
		t.Fatalf("Lookup after refused duplicate = %+v, %v; want %+v", n, ok, first)
	}
	if o, _ := g.owner("dup"); o != 1 {
		t.Fatalf("Owner after refused duplicate = %d, want 1", o)
	}
	if g.len() != 1 || g.rememberedLen() != 0 {
		t.Fatalf("Len, RememberedLen = %d, %d; want 1, 0", g.len(), g.rememberedLen())
	}
	g.mustUnregister("dup", 1)
	got, ok := g.register(second, 2, 6, observedNow+1)
	if !ok || got != c+1 {
		t.Fatalf("Register after unregister = %d, %v; want %d, true", got, ok, c+1)
	}
	if n, _ := g.lookup("dup"); n != second {
		t.Fatalf("Lookup = %+v, want %+v", n, second)
	}
}

// A connection that does not hold the registration cannot remove it: not a
// stranger, not the name's previous holder closing late.
func TestUnregisterWrongOwner(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	g.mustRegister("a", 1, 5, observedNow)
	g.mustUnregister("a", 1)
	g.mustRegister("a", 2, 6, observedNow)
	for _, owner := range []registry.ConnID{1, 3, 0} {
		if g.unregister("a", owner) {
			t.Fatalf("Unregister(a, %d) = true; conn 2 holds it", owner)
		}
	}
	if o, ok := g.owner("a"); !ok || o != 2 {
		t.Fatalf("Owner(a) = %d, %v; want 2, true", o, ok)
	}
	if g.len() != 1 || g.rememberedLen() != 0 {
		t.Fatalf("Len, RememberedLen = %d, %d; want 1, 0", g.len(), g.rememberedLen())
	}
	if g.unregister("nobody", 2) {
		t.Fatal("Unregister of an unknown name = true")
	}
	g.mustUnregister("a", 2)
	if g.unregister("a", 2) {
		t.Fatal("second Unregister of a remembered name = true")
	}
}

// STOP unregisters whoever holds the name and says who did (facts 4.6).
func TestStop(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	g.mustRegister("a", 7, 5, observedNow)
	if o, ok := g.stop("a"); !ok || o != 7 {
		t.Fatalf("Stop(a) = %d, %v; want 7, true", o, ok)
	}
	if _, ok := g.lookup("a"); ok {
		t.Fatal("a still registered after Stop")
	}
	if o, ok := g.owner("a"); ok || o != 0 {
		t.Fatalf("Owner(a) after Stop = %d, %v; want 0, false", o, ok)
	}
	if g.len() != 0 || g.rememberedLen() != 1 {
		t.Fatalf("Len, RememberedLen = %d, %d; want 0, 1", g.len(), g.rememberedLen())
	}
	if d := cmp.Diff([]string{"a"}, g.rememberedNames()); d != "" {
		t.Fatalf("remembered (-want +got):\n%s", d)
	}
	if o, ok := g.stop("a"); ok || o != 0 {
		t.Fatalf("Stop of a remembered name = %d, %v; want 0, false", o, ok)
	}
	if o, ok := g.stop("nobody"); ok || o != 0 {
		t.Fatalf("Stop of an unknown name = %d, %v; want 0, false", o, ok)
	}
}

func TestEmpty(t *testing.T) {
	g := newChecked(t, registry.MaxRemembered)
	if s := g.names(); len(s) != 0 {
		t.Fatalf("Names() = %v, want empty", s)
	}
	if s := g.live(); len(s) != 0 {
		t.Fatalf("Live() = %v, want empty", s)
	}
	if s := g.remembered(); len(s) != 0 {
		t.Fatalf("Remembered() = %v, want empty", s)
	}
	if a, o := g.dump(); len(a) != 0 || len(o) != 0 {
		t.Fatalf("Dump() = %v, %v; want empty", a, o)
	}
	if g.len() != 0 || g.rememberedLen() != 0 {
		t.Fatalf("Len, RememberedLen = %d, %d; want 0, 0", g.len(), g.rememberedLen())
	}
	if n, ok := g.lookup(""); ok || n != (wire.Node{}) {
		t.Fatalf("Lookup(\"\") = %+v, %v; want zero, false", n, ok)
	}
	if o, ok := g.owner(""); ok || o != 0 {
		t.Fatalf("Owner(\"\") = %d, %v; want 0, false", o, ok)
	}
	// Names on a registry emptied again reuses its slice; still empty.
	g.mustRegister("a", 1, 5, observedNow)
	g.names()
	g.mustUnregister("a", 1)
	if s := g.names(); len(s) != 0 {
		t.Fatalf("Names() after the last unregister = %v, want empty", s)
	}
}

// A remembered record keeps the last registration's fields: DUMP shows its
// port and fd, and a new name taking it over replaces them all.
func TestRememberedFields(t *testing.T) {
	g := newChecked(t, 0)
	n := wire.Node{Name: "a", Port: 4000, Type: wire.NodeHidden, Proto: 1, High: 5, Low: 5, Extra: "\x00x"}
	c, _ := g.register(n, 3, 9, observedNow)
	g.mustUnregister("a", 3)
	want := []registry.Entry{{Node: n, Owner: 3, Fd: 9, Creation: c}}
	if d := cmp.Diff(want, g.remembered()); d != "" {
		t.Fatalf("Remembered (-want +got):\n%s", d)
	}
	m := node("b", 4001)
	g.register(m, 4, 10, observedNow+50)
	want = []registry.Entry{{Node: m, Owner: 4, Fd: 10, Creation: c}}
	if d := cmp.Diff(want, g.live()); d != "" {
		t.Fatalf("Live after takeover (-want +got):\n%s", d)
	}
	if _, ok := g.rememberedCreation("a"); ok {
		t.Fatal("a still remembered after its record was taken over")
	}
}

// Every other test trusts CheckInvariants; this one shows that it notices
// each kind of damage (registry.Corrupt is defined in export_test.go).
func TestCheckInvariantsDetectsCorruption(t *testing.T) {
	for _, tc := range []struct {
		how, want string
	}{
		{"shared record", "remembered list has a cycle or shares a record"},
		{"back link", "live list: bad back link at \"a\""},
		{"live flag", "live list holds \"b\" with live=false"},
		{"not indexed", "live list holds \"b\", not indexed by name"},
		{"creation", "\"b\" has creation 3 < 4"},
		{"tail", "live list: tail is not the last record"},
		{"count", "live list counts 3, holds 2"},
		{"remembered count", "remembered list counts 0, holds 1"},
		{"stray index entry", "name index holds records that are in no list"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			g := newChecked(t, registry.MaxRemembered)
			g.mustRegister("a", 1, 5, observedNow)
			g.mustRegister("b", 2, 6, observedNow)
			g.mustRegister("c", 3, 7, observedNow)
			g.mustUnregister("c", 3)
			registry.Corrupt(g.r, tc.how)
			err := g.r.CheckInvariants()
			if err == nil || err.Error() != "registry: "+tc.want {
				t.Fatalf("CheckInvariants() = %v, want registry: %s", err, tc.want)
			}
		})
	}
}

// TestNamesSnapshot pins Names' contract, which the server's cache of the
// encoded NAMES reply relies on: the same slice while the registered nodes
// do not change, a new one as soon as they do, and a returned slice never
// changes afterwards.
func TestNamesSnapshot(t *testing.T) {
	g := newChecked(t, 2)
	g.mustRegister("a", 1, 5, observedNow)
	g.mustRegister("b", 2, 6, observedNow)
	first := g.names()
	want := slices.Clone(first)
	same := func(a, b []wire.NameEntry) bool { return len(a) == len(b) && &a[0] == &b[0] }
	if again := g.names(); !same(first, again) {
		t.Fatal("Names changed with no registration in between")
	}
	// Neither a look-up nor a failed registration or unregistration
	// changes the list.
	g.lookup("a")
	g.r.Register(wire.Node{Name: "a"}, 9, 9, observedNow)
	g.r.Unregister("a", 9)
	if again := g.names(); !same(first, again) {
		t.Fatal("Names changed after operations that changed nothing")
	}
	steps := []func(){
		func() { g.mustRegister("c", 3, 7, observedNow) },
		func() { g.mustUnregister("b", 2) },
		func() { g.stop("a") },
		func() { g.mustRegister("b", 4, 8, observedNow) }, // a remembered name
		func() { g.mustRegister("d", 5, 9, observedNow) }, // reuses a remembered record
	}
	prev := first
	for i, step := range steps {
		step()
		now := g.names()
		if len(now) > 0 && len(prev) > 0 && &now[0] == &prev[0] {
			t.Fatalf("step %d: Names returned the old slice after a change", i)
		}
		if d := cmp.Diff(want, first); d != "" {
			t.Fatalf("step %d: an earlier Names result changed (-before +after):\n%s", i, d)
		}
		prev = now
	}
}
