package registry_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// model is the obviously correct registry: two slices searched linearly,
// following the stock epmd rules of facts 6.2-6.4 as written there, with
// 64-bit arithmetic so that the 32-bit wrap is spelled out, not inherited.
type model struct {
	max  int           // remembered-record cap
	live []modelRecord // registered, newest first
	old  []modelRecord // remembered, oldest first (FIFO of unregistration)
}

type modelRecord struct {
	node    wire.Node
	owner   registry.ConnID
	fd      int
	counter uint32
}

const twoTo32 = uint64(1) << 32

// clampCounter reduces x modulo 2^32 and lifts results below 4 to 4.
func clampCounter(x uint64) uint32 {
	x %= twoTo32
	if x < 4 {
		x = 4
	}
	return uint32(x)
}

// freshCounter is a brand-new name's counter: time(NULL) truncated to 32
// bits, plus one, wrapping at 2^32, at least 4.
func freshCounter(now int64) uint32 { return clampCounter(uint64(now)%twoTo32 + 1) }

// nextCounter is a remembered name's counter on re-registration.
func nextCounter(c uint32) uint32 { return clampCounter(uint64(c) + 1) }

func index(recs []modelRecord, name string) int {
	return slices.IndexFunc(recs, func(r modelRecord) bool { return r.node.Name == name })
}

func (m *model) register(n wire.Node, owner registry.ConnID, fd int, now int64) (uint32, bool) {
	if index(m.live, n.Name) >= 0 {
		return 0, false // duplicate of a registered name (6.2)
	}
	var rec modelRecord
	if i := index(m.old, n.Name); i >= 0 {
		rec = m.old[i] // the name's own remembered record, counter + 1
		m.old = slices.Delete(m.old, i, i+1)
		rec.counter = nextCounter(rec.counter)
	} else if len(m.old) > m.max {
		rec = m.old[0] // take over the oldest remembered record as is
		m.old = slices.Delete(m.old, 0, 1)
	} else {
		rec.counter = freshCounter(now)
	}
	rec.node, rec.owner, rec.fd = n, owner, fd
	m.live = slices.Insert(m.live, 0, rec)
	return rec.counter, true
}

func (m *model) forget(i int) registry.ConnID {
	rec := m.live[i]
	m.live = slices.Delete(m.live, i, i+1)
	m.old = append(m.old, rec)
	return rec.owner
}

func (m *model) unregister(name string, owner registry.ConnID) bool {
	i := index(m.live, name)
	if i < 0 || m.live[i].owner != owner {
		return false
	}
	m.forget(i)
	return true
}

func (m *model) stop(name string) (registry.ConnID, bool) {
	i := index(m.live, name)
	if i < 0 {
		return 0, false
	}
	return m.forget(i), true
}

func (m *model) lookup(name string) (wire.Node, bool) {
	if i := index(m.live, name); i >= 0 {
		return m.live[i].node, true
	}
	return wire.Node{}, false
}

func (m *model) owner(name string) (registry.ConnID, bool) {
	if i := index(m.live, name); i >= 0 {
		return m.live[i].owner, true
	}
	return 0, false
}

func entriesOf(recs []modelRecord) []registry.Entry {
	var out []registry.Entry
	for _, r := range recs {
		out = append(out, registry.Entry{Node: r.node, Owner: r.owner, Fd: r.fd, Creation: r.counter})
	}
	return out
}

func dumpOf(recs []modelRecord) []wire.DumpEntry {
	var out []wire.DumpEntry
	for _, r := range recs {
		out = append(out, wire.DumpEntry{Name: r.node.Name, Port: r.node.Port, Fd: r.fd})
	}
	return out
}

func (m *model) names() []wire.NameEntry {
	var out []wire.NameEntry
	for _, r := range m.live {
		out = append(out, wire.NameEntry{Name: r.node.Name, Port: r.node.Port})
	}
	return out
}

// registryMachine drives a Registry and the model with the same actions.
type registryMachine struct {
	g        *checked
	m        *model
	nextConn registry.ConnID // connection IDs are never reused
	fresh    int             // fresh names handed out so far
	seen     []string        // every name drawn, for the look-up checks
}

// pool holds the usual names; a small pool makes duplicates, re-registrations
// and stale unregistrations common. The empty name is legal (facts 4.1).
var pool = []string{"a", "b", "c", ""}

func (s *registryMachine) drawName(t *rapid.T) string {
	i := rapid.IntRange(0, 2*len(pool)).Draw(t, "name")
	var name string
	if i == 2*len(pool) {
		name = fmt.Sprintf("fresh%d", s.fresh)
		s.fresh++
	} else {
		name = pool[i/2]
	}
	if !slices.Contains(s.seen, name) {
		s.seen = append(s.seen, name)
	}
	return name
}

// drawNow draws a Unix time near 0 and near 2^32 (so that the minimum-4 and
// the 32-bit wrap rules both trigger, for fresh and re-registered names),
// near today, and past 2^33.
func drawNow(t *rapid.T) int64 {
	return rapid.OneOf(
		rapid.Int64Range(0, 6),
		rapid.Int64Range(1<<32-6, 1<<32+6),
		rapid.Int64Range(1795338670, 1795338680),
		rapid.Int64Range(1<<33-3, 1<<33+3),
	).Draw(t, "now")
}

func drawNode(t *rapid.T, name string) wire.Node {
	return wire.Node{
		Name:  name,
		Port:  rapid.Uint16().Draw(t, "port"),
		Type:  rapid.SampledFrom([]uint8{wire.NodeNormal, wire.NodeHidden, wire.NodeHiddenEI}).Draw(t, "type"),
		Proto: rapid.Uint8Range(0, 1).Draw(t, "proto"),
		High:  rapid.Uint16Range(0, 7).Draw(t, "high"),
		Low:   rapid.Uint16Range(0, 7).Draw(t, "low"),
		Extra: rapid.SampledFrom([]string{"", "x", "\x00\xff"}).Draw(t, "extra"),
	}
}

func (s *registryMachine) Register(t *rapid.T) {
	n := drawNode(t, s.drawName(t))
	fd := rapid.IntRange(3, 20).Draw(t, "fd")
	now := drawNow(t)
	s.nextConn++
	owner := s.nextConn
	want, wantOK := s.m.register(n, owner, fd, now)
	got, gotOK := s.g.register(n, owner, fd, now)
	if got != want || gotOK != wantOK {
		t.Fatalf("Register(%q, conn %d, now %d) = %d, %v; model says %d, %v", n.Name, owner, now, got, gotOK, want, wantOK)
	}
}

func (s *registryMachine) Unregister(t *rapid.T) {
	name := s.drawName(t)
	var owner registry.ConnID
	if o, ok := s.m.owner(name); ok && rapid.Bool().Draw(t, "rightOwner") {
		owner = o
	} else {
		// Any connection so far, including earlier holders of this name
		// (a late close) and, by chance, the right one.
		owner = registry.ConnID(rapid.Uint64Range(0, uint64(s.nextConn)+1).Draw(t, "owner"))
	}
	want := s.m.unregister(name, owner)
	if got := s.g.unregister(name, owner); got != want {
		t.Fatalf("Unregister(%q, conn %d) = %v; model says %v", name, owner, got, want)
	}
}

func (s *registryMachine) Stop(t *rapid.T) {
	name := s.drawName(t)
	want, wantOK := s.m.stop(name)
	got, gotOK := s.g.stop(name)
	if got != want || gotOK != wantOK {
		t.Fatalf("Stop(%q) = %d, %v; model says %d, %v", name, got, gotOK, want, wantOK)
	}
}

func (s *registryMachine) Lookup(t *rapid.T) {
	s.checkLookup(t, s.drawName(t))
}

func (s *registryMachine) checkLookup(t *rapid.T, name string) {
	wantN, wantOK := s.m.lookup(name)
	gotN, gotOK := s.g.lookup(name)
	if gotOK != wantOK {
		t.Fatalf("Lookup(%q) ok = %v; model says %v", name, gotOK, wantOK)
	}
	if d := cmp.Diff(wantN, gotN); d != "" {
		t.Fatalf("Lookup(%q) (-want +got):\n%s", name, d)
	}
	wantO, wantOK := s.m.owner(name)
	gotO, gotOK := s.g.owner(name)
	if gotO != wantO || gotOK != wantOK {
		t.Fatalf("Owner(%q) = %d, %v; model says %d, %v", name, gotO, gotOK, wantO, wantOK)
	}
}

var equateEmpty = cmpopts.EquateEmpty()

func (s *registryMachine) Check(t *rapid.T) {
	s.g.invariants("action")
	if d := cmp.Diff(s.m.names(), s.g.names(), equateEmpty); d != "" {
		t.Fatalf("Names (-want +got):\n%s", d)
	}
	if d := cmp.Diff(entriesOf(s.m.live), s.g.live(), equateEmpty); d != "" {
		t.Fatalf("Live (-want +got):\n%s", d)
	}
	if d := cmp.Diff(entriesOf(s.m.old), s.g.remembered(), equateEmpty); d != "" {
		t.Fatalf("Remembered (-want +got):\n%s", d)
	}
	active, old := s.g.dump()
	if d := cmp.Diff(dumpOf(s.m.live), active, equateEmpty); d != "" {
		t.Fatalf("Dump active (-want +got):\n%s", d)
	}
	if d := cmp.Diff(dumpOf(s.m.old), old, equateEmpty); d != "" {
		t.Fatalf("Dump old (-want +got):\n%s", d)
	}
	if got, want := s.g.len(), len(s.m.live); got != want {
		t.Fatalf("Len() = %d, model has %d", got, want)
	}
	if got, want := s.g.rememberedLen(), len(s.m.old); got != want {
		t.Fatalf("RememberedLen() = %d, model has %d", got, want)
	}
	for _, name := range s.seen {
		s.checkLookup(t, name)
	}
}

// TestRegistryModel compares the Registry with the model over random action
// sequences, with a cap of 0..3 so that records are taken over often.
func TestRegistryModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		maxOld := rapid.IntRange(0, 3).Draw(t, "maxRemembered")
		s := &registryMachine{g: newChecked(t, maxOld), m: &model{max: maxOld}}
		t.Repeat(rapid.StateMachineActions(s))
	})
}

// TestModelSelfCheck pins the model's creation arithmetic to the numbers of
// facts 6.3, so that a wrong model cannot agree with a wrong registry.
func TestModelSelfCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uint32
		want uint32
	}{
		{"fresh observed", freshCounter(1795338672), 1795338673},
		{"fresh 0", freshCounter(0), 4},
		{"fresh 3", freshCounter(3), 4},
		{"fresh 4", freshCounter(4), 5},
		{"fresh 2^32-1 wraps", freshCounter(1<<32 - 1), 4},
		{"fresh 2^32+7 truncates", freshCounter(1<<32 + 7), 8},
		{"next 4", nextCounter(4), 5},
		{"next 2^32-1 wraps", nextCounter(1<<32 - 1), 4},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
