package registry

import (
	"errors"
	"strconv"
	"strings"

	"github.com/gopmd/gopmd/epmd/wire"
)

// State is a registry's whole content, in its own order: what a daemon
// hands over to the process that takes its place (see epmd/snapshot), so
// that the new registry answers, lists and hands out creations exactly as
// the old one would have.
type State struct {
	Live       []Entry // registered nodes, newest first (NAMES order)
	Remembered []Entry // remembered records, oldest first (the next to be reused first)
}

// Export returns g's content. It shares nothing with g.
func (g *Registry) Export() State {
	return State{Live: g.Live(), Remembered: g.Remembered()}
}

// Import returns a registry holding s that remembers up to maxRemembered
// records, or an error when s is not a state a registry can be in: a name
// twice (live or remembered), a node that ALIVE2 would refuse (a NUL in
// its name, name or extra too long, name not UTF-8), a creation below 4.
// More remembered records than maxRemembered are kept (the next new names
// take them over, oldest first).
func Import(s State, maxRemembered int) (*Registry, error) {
	g := New(maxRemembered)
	add := func(e Entry, live bool) error {
		if err := CheckEntry(e); err != nil {
			return err
		}
		if g.byName[e.Name] != nil {
			return errors.New("registry: " + strconv.Quote(e.Name) + " twice in the state")
		}
		r := &record{Entry: e, live: live}
		g.byName[e.Name] = r
		if live {
			g.live.pushBack(r)
		} else {
			g.old.pushBack(r)
		}
		return nil
	}
	for _, e := range s.Live {
		if err := add(e, true); err != nil {
			return nil, err
		}
	}
	for _, e := range s.Remembered {
		if err := add(e, false); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// CheckEntry reports why e cannot be a record of a registry: its node is
// one ALIVE2 would not register (a NUL in the name, name or extra too
// long, name not UTF-8; an empty name is legal), or its creation is below
// 4.
func CheckEntry(e Entry) error {
	if strings.IndexByte(e.Name, 0) >= 0 {
		return errors.New("registry: node name " + strconv.Quote(e.Name) + " contains NUL")
	}
	n := e.Node
	if err := wire.CheckAlive2(&n); err != nil {
		return err
	}
	if e.Creation < minCreation {
		return errors.New("registry: " + strconv.Quote(e.Name) + " has creation " + strconv.FormatUint(uint64(e.Creation), 10) + " < 4")
	}
	return nil
}
