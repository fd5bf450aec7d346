// Package registry is epmd's node table: the registered nodes, and the
// remembered ("old/unused") records of nodes that went away, which keep a
// name's creation counter so that a restarted node gets a new creation.
//
// A Registry is a plain data structure: no locks, no clock, no I/O. The
// caller serializes access and passes the current time where it matters.
package registry

import (
	"errors"
	"strconv"

	"github.com/gopmd/gopmd/epmd/wire"
)

// ConnID identifies the connection that holds a registration. IDs are never
// reused, unlike file descriptors, so a registration cannot be mistaken for
// one made later on a recycled descriptor.
type ConnID uint64

// Remembered-record caps of stock epmd (MAX_UNREG_COUNT and
// DEBUG_MAX_UNREG_COUNT): once more records than this are remembered, a new
// name takes over the oldest one instead of a fresh record.
const (
	MaxRemembered      = 1000
	DebugMaxRemembered = 5
)

// minCreation is the smallest creation counter handed out: 0..3 are the
// values of the old 2-bit creation scheme and never appear in a 32-bit one.
const minCreation = 4

// Entry describes one record, registered or remembered.
type Entry struct {
	wire.Node
	Owner    ConnID // connection holding the registration (last holder, if remembered)
	Fd       int    // that connection's file descriptor, shown by DUMP
	Creation uint32 // the record's creation counter
}

type record struct {
	Entry
	live       bool
	prev, next *record
}

// list is an intrusive doubly linked list of records.
type list struct {
	head, tail *record
	n          int
}

func (l *list) pushFront(r *record) {
	r.prev, r.next = nil, l.head
	if l.head != nil {
		l.head.prev = r
	} else {
		l.tail = r
	}
	l.head = r
	l.n++
}

func (l *list) pushBack(r *record) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
	l.n++
}

func (l *list) remove(r *record) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next = nil, nil
	l.n--
}

// Registry is the node table. The zero value is not usable; call New.
type Registry struct {
	byName map[string]*record // every record, live or remembered; a name has at most one
	live   list               // registered nodes, newest first
	old    list               // remembered nodes, oldest first
	maxOld int

	// names is what Names returned last, kept until the live list
	// changes; nil when it must be made again.
	names []wire.NameEntry
	// dumpActive and dumpOld are what Dump returned last, kept until
	// either list changes; dumped says they hold.
	dumpActive, dumpOld []wire.DumpEntry
	dumped              bool
}

// New returns an empty registry that remembers up to maxRemembered records
// before reusing the oldest (MaxRemembered, or DebugMaxRemembered when the
// daemon runs with -d).
func New(maxRemembered int) *Registry {
	return &Registry{byName: make(map[string]*record), maxOld: maxRemembered}
}

// Register adds n, held by connection owner (file descriptor fd), at Unix
// time now. It fails when the name is currently registered (remembered
// names are not duplicates). It returns the record's creation counter:
//
//   - a remembered name gets its record back, counter + 1;
//   - a new name takes over the oldest remembered record, counter unchanged,
//     when more than the cap are remembered;
//   - otherwise a new name gets now + 1, truncated to 32 bits.
//
// Any counter below 4 becomes 4.
func (g *Registry) Register(n wire.Node, owner ConnID, fd int, now int64) (creation uint32, ok bool) {
	r := g.byName[n.Name]
	switch {
	case r != nil && r.live:
		return 0, false
	case r != nil:
		g.old.remove(r)
		r.Creation = atLeastMin(r.Creation + 1)
	case g.old.n > g.maxOld:
		r = g.old.head
		g.old.remove(r)
		delete(g.byName, r.Name)
		g.byName[n.Name] = r
	default:
		r = &record{Entry: Entry{Creation: atLeastMin(uint32(now) + 1)}}
		g.byName[n.Name] = r
	}
	r.Node, r.Owner, r.Fd, r.live = n, owner, fd, true
	g.live.pushFront(r)
	g.changed()
	return r.Creation, true
}

func atLeastMin(c uint32) uint32 {
	if c < minCreation {
		return minCreation
	}
	return c
}

// Unregister moves name to the remembered list if it is registered by
// owner. A registration held by another connection is left alone, so a
// connection that closes late cannot remove its successor.
func (g *Registry) Unregister(name string, owner ConnID) bool {
	r := g.byName[name]
	if r == nil || !r.live || r.Owner != owner {
		return false
	}
	g.forget(r)
	return true
}

// Stop moves name to the remembered list whoever holds it, and returns the
// connection that held it (STOP_REQ).
func (g *Registry) Stop(name string) (owner ConnID, ok bool) {
	r := g.byName[name]
	if r == nil || !r.live {
		return 0, false
	}
	g.forget(r)
	return r.Owner, true
}

func (g *Registry) forget(r *record) {
	g.live.remove(r)
	r.live = false
	g.old.pushBack(r)
	g.changed()
}

// changed drops what Names and Dump returned: the next calls make new
// slices, and the old ones stay as they were for whoever holds them.
func (g *Registry) changed() {
	g.names = nil
	g.dumpActive, g.dumpOld, g.dumped = nil, nil, false
}

// Lookup returns the registered node called name.
func (g *Registry) Lookup(name string) (wire.Node, bool) {
	r := g.byName[name]
	if r == nil || !r.live {
		return wire.Node{}, false
	}
	return r.Node, true
}

// Owner returns the connection holding name's registration.
func (g *Registry) Owner(name string) (ConnID, bool) {
	r := g.byName[name]
	if r == nil || !r.live {
		return 0, false
	}
	return r.Owner, true
}

// Len is the number of registered nodes.
func (g *Registry) Len() int { return g.live.n }

// RememberedLen is the number of remembered records.
func (g *Registry) RememberedLen() int { return g.old.n }

// Names returns the registered nodes newest first, as NAMES lists them.
// The slice is read-only and never changes: the registry returns the same
// one until its registered nodes change, then makes a new one. So a
// caller may keep it after the registry moves on, and two calls return
// the same slice exactly when nothing was registered or unregistered in
// between (a server can cache its encoding).
func (g *Registry) Names() []wire.NameEntry {
	if g.names != nil {
		return g.names
	}
	s := make([]wire.NameEntry, 0, max(g.live.n, 1)) // never nil, even when empty
	for r := g.live.head; r != nil; r = r.next {
		s = append(s, wire.NameEntry{Name: r.Name, Port: r.Port})
	}
	g.names = s
	return s
}

// Live returns the registered records, newest first.
func (g *Registry) Live() []Entry { return entries(&g.live) }

// Remembered returns the remembered records, oldest first.
func (g *Registry) Remembered() []Entry { return entries(&g.old) }

func entries(l *list) []Entry {
	out := make([]Entry, 0, l.n)
	for r := l.head; r != nil; r = r.next {
		out = append(out, r.Entry)
	}
	return out
}

// Dump returns the DUMP reply's entries: registered newest first, then
// remembered oldest first. Like Names, the slices are read-only and never
// change: the same ones are returned until either list changes, so a
// server can cache their encoding, and a reader holding them is not
// disturbed by later changes.
func (g *Registry) Dump() (active, old []wire.DumpEntry) {
	if g.dumped {
		return g.dumpActive, g.dumpOld
	}
	active = make([]wire.DumpEntry, 0, g.live.n)
	old = make([]wire.DumpEntry, 0, g.old.n)
	for r := g.live.head; r != nil; r = r.next {
		active = append(active, wire.DumpEntry{Name: r.Name, Port: r.Port, Fd: r.Fd})
	}
	for r := g.old.head; r != nil; r = r.next {
		old = append(old, wire.DumpEntry{Name: r.Name, Port: r.Port, Fd: r.Fd})
	}
	g.dumpActive, g.dumpOld, g.dumped = active, old, true
	return active, old
}

// CheckInvariants verifies the internal structure: both lists well linked
// and counted, every record in exactly the list its state says, the name
// index covering exactly the records in the lists, creations at least 4.
func (g *Registry) CheckInvariants() error {
	seen := make(map[*record]bool, len(g.byName))
	check := func(l *list, live bool, what string) error {
		n := 0
		var prev *record
		for r := l.head; r != nil; r = r.next {
			if seen[r] {
				return errors.New("registry: " + what + " list has a cycle or shares a record")
			}
			seen[r] = true
			if r.prev != prev {
				return errors.New("registry: " + what + " list: bad back link at " + strconv.Quote(r.Name))
			}
			if r.live != live {
				return errors.New("registry: " + what + " list holds " + strconv.Quote(r.Name) + " with live=" + strconv.FormatBool(r.live))
			}
			if g.byName[r.Name] != r {
				return errors.New("registry: " + what + " list holds " + strconv.Quote(r.Name) + ", not indexed by name")
			}
			if r.Creation < minCreation {
				return errors.New("registry: " + strconv.Quote(r.Name) + " has creation " + strconv.FormatUint(uint64(r.Creation), 10) + " < 4")
			}
			prev = r
			n++
		}
		if l.tail != prev {
			return errors.New("registry: " + what + " list: tail is not the last record")
		}
		if l.n != n {
			return errors.New("registry: " + what + " list counts " + strconv.Itoa(l.n) + ", holds " + strconv.Itoa(n))
		}
		return nil
	}
	if err := check(&g.live, true, "live"); err != nil {
		return err
	}
	if err := check(&g.old, false, "remembered"); err != nil {
		return err
	}
	if len(seen) != len(g.byName) {
		return errors.New("registry: name index holds records that are in no list")
	}
	return nil
}
