package snapshot_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/snapshot"
	"github.com/gopmd/gopmd/epmd/wire"
)

// drawSnapshot makes the state of a daemon after a random history: a
// registry driven through Register, Unregister and Stop by connections,
// some of which were refused and kept, with names of every legal shape
// (empty, 255 four-byte characters) and extra fields up to the limit.
func drawSnapshot(t *rapid.T) *snapshot.Snapshot {
	g := registry.New(rapid.IntRange(0, 3).Draw(t, "maxRemembered"))
	names := []string{"a", "", "n\u00e9", strings.Repeat("\U00010000", wire.MaxNameChars), "z"}
	extras := []string{"", "\x00\xff", strings.Repeat("x", wire.MaxSymLen)}
	var conn registry.ConnID
	sockets := map[registry.ConnID]snapshot.SocketState{}
	for range rapid.IntRange(0, 40).Draw(t, "steps") {
		name := rapid.SampledFrom(names).Draw(t, "name")
		switch rapid.IntRange(0, 2).Draw(t, "op") {
		case 0:
			conn++
			n := wire.Node{Name: name, Port: rapid.Uint16().Draw(t, "port"), Type: rapid.Uint8().Draw(t, "type"),
				Proto: rapid.Uint8().Draw(t, "proto"), High: rapid.Uint16().Draw(t, "high"), Low: rapid.Uint16().Draw(t, "low"),
				Extra: rapid.SampledFrom(extras).Draw(t, "extra")}
			if _, ok := g.Register(n, conn, rapid.IntRange(-1, 1<<20).Draw(t, "fd"), rapid.Int64().Draw(t, "now")); ok {
				sockets[conn] = snapshot.Registered
			} else if rapid.Bool().Draw(t, "keepRefused") {
				sockets[conn] = snapshot.Refused
			}
		case 1, 2:
			// The holder goes away (its socket closes) or is stopped.
			if owner, ok := g.Stop(name); ok {
				delete(sockets, owner)
			}
		}
	}
	s := &snapshot.Snapshot{NextConn: conn + 1 + registry.ConnID(rapid.IntRange(0, 3).Draw(t, "gap")), Table: g.Export()}
	for c := registry.ConnID(1); c <= conn; c++ {
		if st := sockets[c]; st != 0 {
			s.Sockets = append(s.Sockets, snapshot.Socket{Conn: c, State: st})
		}
	}
	return s
}

// TestRoundTrip: any daemon state encodes, decodes to itself, and the
// encoding is canonical (decode -> encode gives the same bytes).
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawSnapshot(t)
		b, err := snapshot.Encode(s)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		got, err := snapshot.Decode(b)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if diff := cmp.Diff(s, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		b2, err := snapshot.Encode(got)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	})
}

// TestDecodeDamaged: every truncation and every single-byte change of a
// valid snapshot is refused (the checksum, lengths and checks catch them),
// without a panic.
func TestDecodeDamaged(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b, err := snapshot.Encode(drawSnapshot(t))
		if err != nil {
			t.Fatal(err)
		}
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := snapshot.Decode(b[:cut]); !errors.Is(err, snapshot.ErrFormat) {
			t.Fatalf("truncated at %d of %d: %v", cut, len(b), err)
		}
		d := bytes.Clone(b)
		i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
		d[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "flip"))
		if _, err := snapshot.Decode(d); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	})
}

// TestCheck: states no daemon can be in are refused by Encode (and so by
// Decode, which applies the same check).
func TestCheck(t *testing.T) {
	entry := func(name string, owner registry.ConnID) registry.Entry {
		return registry.Entry{Node: wire.Node{Name: name, Port: 9, Type: wire.NodeNormal, High: 6, Low: 5}, Owner: owner, Fd: 7, Creation: 5}
	}
	reg := func(c registry.ConnID) snapshot.Socket { return snapshot.Socket{Conn: c, State: snapshot.Registered} }
	ok := snapshot.Snapshot{NextConn: 3, Sockets: []snapshot.Socket{reg(1), {Conn: 2, State: snapshot.Refused}},
		Table: registry.State{Live: []registry.Entry{entry("a", 1)}, Remembered: []registry.Entry{entry("b", 99)}}}
	if _, err := snapshot.Encode(&ok); err != nil {
		t.Fatalf("a consistent state: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(s *snapshot.Snapshot)
	}{
		{"owner not a socket", func(s *snapshot.Snapshot) { s.Table.Live[0].Owner = 5 }},
		{"owner refused", func(s *snapshot.Snapshot) { s.Table.Live[0].Owner = 2 }},
		{"registered socket without entry", func(s *snapshot.Snapshot) { s.Table.Live = nil }},
		{"two entries one socket", func(s *snapshot.Snapshot) { s.Table.Live = append(s.Table.Live, entry("c", 1)) }},
		{"socket twice", func(s *snapshot.Snapshot) {
			s.Sockets = append(s.Sockets, snapshot.Socket{Conn: 2, State: snapshot.Refused})
		}},
		{"socket 0", func(s *snapshot.Snapshot) { s.Sockets[1].Conn = 0 }},
		{"unknown state", func(s *snapshot.Snapshot) { s.Sockets[1].State = 3 }},
		{"next id too low", func(s *snapshot.Snapshot) { s.NextConn = 2 }},
		{"duplicate name", func(s *snapshot.Snapshot) { s.Table.Remembered[0].Name = "a" }},
		{"creation 0", func(s *snapshot.Snapshot) { s.Table.Remembered[0].Creation = 0 }},
		{"name too long", func(s *snapshot.Snapshot) { s.Table.Live[0].Name = strings.Repeat("x", 256) }},
	} {
		s := ok
		s.Sockets = append([]snapshot.Socket(nil), ok.Sockets...)
		s.Table.Live = append([]registry.Entry(nil), ok.Table.Live...)
		s.Table.Remembered = append([]registry.Entry(nil), ok.Table.Remembered...)
		tc.edit(&s)
		if _, err := snapshot.Encode(&s); err == nil {
			t.Errorf("%s: encoded", tc.name)
		}
	}
}

// TestDecodeForgedCounts: a count larger than the input can hold is
// refused before anything is allocated for it.
func TestDecodeForgedCounts(t *testing.T) {
	s := &snapshot.Snapshot{NextConn: 1}
	b, err := snapshot.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	// The socket count follows magic, version, length and the next id.
	forged := bytes.Clone(b)
	copy(forged[22:], []byte{0xff, 0xff, 0xff, 0xff})
	forged = fixChecksum(forged)
	if _, err := snapshot.Decode(forged); !errors.Is(err, snapshot.ErrFormat) {
		t.Errorf("forged count: %v", err)
	}
}
