package fuzz_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/snapshot"
	"github.com/gopmd/gopmd/epmd/wire"
)

// FuzzSnapshotDecode feeds arbitrary bytes to snapshot.Decode, the reader
// of the state a restarting daemon hands over. It must never panic; what
// it accepts must be a state a daemon can be in and exactly what Encode
// writes for it:
//
//   - Encode of the result gives back the input, byte for byte (the format
//     is canonical, so nothing is accepted that was not written);
//   - the table imports into a registry (unique names, valid nodes,
//     creations of at least 4) whose export is the table again;
//   - every registered node's owner is a kept socket in state Registered,
//     holding that one registration, and every id is below NextConn.
//
// Each input is decoded twice: as it is, and framed as the body of a
// snapshot (magic, version, length and checksum made to fit), so that the
// engine, which cannot forge a checksum, reaches the body's parser and
// checks. The seeds are encodings of small states and their bodies.
func FuzzSnapshotDecode(f *testing.F) {
	for _, s := range snapshotSeeds() {
		b, err := snapshot.Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[14 : len(b)-4])
	}
	f.Add([]byte("GOPMDSNP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSnapshotDecode(t, b)
		checkSnapshotDecode(t, frameSnapshot(b))
	})
}

// frameSnapshot wraps body in a snapshot's header and checksum.
func frameSnapshot(body []byte) []byte {
	b := append([]byte("GOPMDSNP"), 0, snapshot.Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func checkSnapshotDecode(t *testing.T, b []byte) {
	s, err := snapshot.Decode(b)
	if err != nil {
		if s != nil {
			t.Fatalf("Decode returned a snapshot with its error %v", err)
		}
		return
	}
	again, err := snapshot.Encode(s)
	if err != nil {
		t.Fatalf("Decode accepted a state Encode refuses: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("Decode accepted a non-canonical encoding:\n in %x\nout %x", b, again)
	}
	g, err := registry.Import(s.Table, registry.MaxRemembered)
	if err != nil {
		t.Fatalf("the decoded table does not import: %v", err)
	}
	if err := g.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Table, g.Export(), cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("import -> export changed the table:\n%s", diff)
	}
	state := map[registry.ConnID]snapshot.SocketState{}
	for _, so := range s.Sockets {
		if so.Conn >= s.NextConn || state[so.Conn] != 0 {
			t.Fatalf("socket %d: duplicate or not below %d", so.Conn, s.NextConn)
		}
		state[so.Conn] = so.State
	}
	for _, e := range s.Table.Live {
		if state[e.Owner] != snapshot.Registered {
			t.Fatalf("%q held by %d, state %d", e.Name, e.Owner, state[e.Owner])
		}
	}
}

func snapshotSeeds() []*snapshot.Snapshot {
	node := func(name string, owner registry.ConnID, creation uint32, extra string) registry.Entry {
		return registry.Entry{Node: wire.Node{Name: name, Port: 4370, Type: wire.NodeNormal, High: 6, Low: 5, Extra: extra},
			Owner: owner, Fd: 9, Creation: creation}
	}
	return []*snapshot.Snapshot{
		{NextConn: 1},
		{NextConn: 4,
			Sockets: []snapshot.Socket{{Conn: 1, State: snapshot.Registered}, {Conn: 3, State: snapshot.Refused}},
			Table: registry.State{
				Live:       []registry.Entry{node("alpha", 1, 1795338671, "")},
				Remembered: []registry.Entry{node("beta", 2, 4, "\x00x"), node("", 0, 1<<32-1, "")},
			}},
		{NextConn: 1 << 40,
			Sockets: []snapshot.Socket{{Conn: 1<<40 - 1, State: snapshot.Registered}},
			Table: registry.State{
				Live: []registry.Entry{node(strings.Repeat("\u00e9", wire.MaxNameChars), 1<<40-1, 7, strings.Repeat("e", 40))},
			}},
	}
}
