// Package snapshot encodes and decodes the state a daemon hands over to the
// process that takes its place: the node table (every registered node with
// its port, type, protocol, versions, extra, creation and owning
// connection; the remembered names with their creation counters) and the
// kept sockets (each connection's id and whether it holds a registration
// or was refused one), as a versioned, length-checked binary format.
//
// Decode accepts only what Encode produces from a consistent state: it
// never panics, on any input, and a snapshot it returns can be imported
// (registry.Import) and matches its sockets. The package is pure: no I/O.
//
// Format (all integers big-endian):
//
//	magic    "GOPMDSNP"                         8 bytes
//	version  uint16 (1)
//	length   uint32: bytes from here to the checksum
//	next     uint64: the next connection id the new process hands out
//	sockets  uint32 count, then per socket: conn uint64, state uint8 (1 registered, 2 refused)
//	live     uint32 count, then entries, newest first
//	old      uint32 count, then entries, oldest first
//	crc      uint32: CRC-32C of everything before it
//
//	entry    name (uint16 length, bytes), port uint16, type uint8,
//	         protocol uint8, high uint16, low uint16, extra (uint16
//	         length, bytes), owner uint64, fd int32, creation uint32
package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
)

// Version is the format version Encode writes and Decode reads.
const Version = 1

const magic = "GOPMDSNP"

// SocketState is what a kept socket is for.
type SocketState uint8

const (
	// Registered: the socket holds a registration (one live entry).
	Registered SocketState = 1
	// Refused: the socket was refused a registration and is kept open,
	// as stock keeps it, until its peer closes it.
	Refused SocketState = 2
)

// Socket is one kept socket: its connection id and its state.
type Socket struct {
	Conn  registry.ConnID
	State SocketState
}

// Snapshot is the handed-over state.
type Snapshot struct {
	// NextConn is the next connection id to hand out: above every id in
	// the snapshot, so that ids are never reused across the handover.
	NextConn registry.ConnID
	Sockets  []Socket
	Table    registry.State
}

// Limits of what Decode accepts, far above what a daemon holds (the
// process's file limit bounds the sockets and the live entries).
const (
	MaxSockets    = 1 << 22
	MaxRemembered = 1 << 22
	maxBody       = 1 << 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat wraps every reason Decode refuses its input.
var ErrFormat = errors.New("snapshot: malformed")

func formatError(why string) error { return fmt.Errorf("%w: %s", ErrFormat, why) }

// Check reports why s is not a state a daemon can be in: its table cannot
// be imported, a socket id appears twice or is 0, a socket has an unknown
// state, a live entry's owner is not a registered socket or two entries
// share one, a registered socket holds no entry, or NextConn is not above
// every socket id.
func Check(s *Snapshot) error {
	if _, err := registry.Import(s.Table, registry.MaxRemembered); err != nil {
		return err
	}
	state := make(map[registry.ConnID]SocketState, len(s.Sockets))
	for _, so := range s.Sockets {
		switch {
		case so.Conn == 0:
			return errors.New("snapshot: socket with connection id 0")
		case so.State != Registered && so.State != Refused:
			return errors.New("snapshot: socket " + strconv.FormatUint(uint64(so.Conn), 10) + " has state " + strconv.Itoa(int(so.State)))
		case state[so.Conn] != 0:
			return errors.New("snapshot: socket " + strconv.FormatUint(uint64(so.Conn), 10) + " twice")
		case so.Conn >= s.NextConn:
			return errors.New("snapshot: socket " + strconv.FormatUint(uint64(so.Conn), 10) + " not below the next id " + strconv.FormatUint(uint64(s.NextConn), 10))
		}
		state[so.Conn] = so.State
	}
	held := make(map[registry.ConnID]bool, len(s.Table.Live))
	for _, e := range s.Table.Live {
		if state[e.Owner] != Registered {
			return errors.New("snapshot: " + strconv.Quote(e.Name) + " is held by connection " + strconv.FormatUint(uint64(e.Owner), 10) + ", not a registered socket")
		}
		if held[e.Owner] {
			return errors.New("snapshot: connection " + strconv.FormatUint(uint64(e.Owner), 10) + " holds two registrations")
		}
		held[e.Owner] = true
	}
	for _, so := range s.Sockets {
		if so.State == Registered && !held[so.Conn] {
			return errors.New("snapshot: registered socket " + strconv.FormatUint(uint64(so.Conn), 10) + " holds no registration")
		}
	}
	return nil
}

// Encode returns s in the snapshot format, or Check's error.
func Encode(s *Snapshot) ([]byte, error) {
	if err := Check(s); err != nil {
		return nil, err
	}
	size := 8 + 2 + 4 + 8 + 4 + len(s.Sockets)*9 + 4 + 4 + 4
	for _, l := range [][]registry.Entry{s.Table.Live, s.Table.Remembered} {
		for _, e := range l {
			size += entrySize(e)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(size-8-2-4-4))
	b = binary.BigEndian.AppendUint64(b, uint64(s.NextConn))
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Sockets)))
	for _, so := range s.Sockets {
		b = binary.BigEndian.AppendUint64(b, uint64(so.Conn))
		b = append(b, byte(so.State))
	}
	for _, l := range [][]registry.Entry{s.Table.Live, s.Table.Remembered} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(l)))
		for _, e := range l {
			b = appendEntry(b, e)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// minEntry is the size of an entry with an empty name and extra.
const minEntry = 2 + 2 + 1 + 1 + 2 + 2 + 2 + 8 + 4 + 4

func entrySize(e registry.Entry) int { return minEntry + len(e.Name) + len(e.Extra) }

func appendEntry(b []byte, e registry.Entry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Name)))
	b = append(b, e.Name...)
	b = binary.BigEndian.AppendUint16(b, e.Port)
	b = append(b, e.Type, e.Proto)
	b = binary.BigEndian.AppendUint16(b, e.High)
	b = binary.BigEndian.AppendUint16(b, e.Low)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Extra)))
	b = append(b, e.Extra...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Owner))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(e.Fd)))
	return binary.BigEndian.AppendUint32(b, e.Creation)
}

// reader reads big-endian fields, remembering the first shortfall.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = formatError("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// count reads a count of items of at least minSize bytes each, refusing
// one the rest of the input cannot hold (so a forged count cannot make
// Decode allocate more than its input's size).
func (r *reader) count(minSize, limit int) int {
	n := int(r.u32())
	if r.err == nil && (n > limit || n > len(r.b)/minSize) {
		r.err = formatError("count " + strconv.Itoa(n) + " larger than the input holds")
		return 0
	}
	return n
}

func (r *reader) entry() registry.Entry {
	var e registry.Entry
	e.Name = string(r.take(int(r.u16())))
	e.Port = r.u16()
	e.Type = r.u8()
	e.Proto = r.u8()
	e.High = r.u16()
	e.Low = r.u16()
	e.Extra = string(r.take(int(r.u16())))
	e.Owner = registry.ConnID(r.u64())
	e.Fd = int(int32(r.u32()))
	e.Creation = r.u32()
	return e
}

// Decode reads a snapshot. It refuses (with an error wrapping ErrFormat, or
// Check's) anything Encode would not have produced: a wrong magic, version
// or checksum, a length that does not match, trailing bytes, or a state
// that fails Check.
func Decode(b []byte) (*Snapshot, error) {
	const head = 8 + 2 + 4
	if len(b) < head+4 {
		return nil, formatError("too short")
	}
	if string(b[:8]) != magic {
		return nil, formatError("not a snapshot")
	}
	if v := binary.BigEndian.Uint16(b[8:]); v != Version {
		return nil, formatError("version " + strconv.Itoa(int(v)) + ", want " + strconv.Itoa(Version))
	}
	if n := binary.BigEndian.Uint32(b[10:]); uint64(n) != uint64(len(b)-head-4) || n > maxBody {
		return nil, formatError("length " + strconv.FormatUint(uint64(n), 10) + " does not match the input")
	}
	if sum := binary.BigEndian.Uint32(b[len(b)-4:]); sum != crc32.Checksum(b[:len(b)-4], castagnoli) {
		return nil, formatError("checksum mismatch")
	}
	r := &reader{b: b[head : len(b)-4]}
	s := &Snapshot{NextConn: registry.ConnID(r.u64())}
	if n := r.count(9, MaxSockets); n > 0 {
		s.Sockets = make([]Socket, n)
		for i := range s.Sockets {
			s.Sockets[i] = Socket{Conn: registry.ConnID(r.u64()), State: SocketState(r.u8())}
		}
	}
	if n := r.count(minEntry, MaxSockets); n > 0 {
		s.Table.Live = make([]registry.Entry, n)
		for i := range s.Table.Live {
			s.Table.Live[i] = r.entry()
		}
	}
	if n := r.count(minEntry, MaxRemembered); n > 0 {
		s.Table.Remembered = make([]registry.Entry, n)
		for i := range s.Table.Remembered {
			s.Table.Remembered[i] = r.entry()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, formatError(strconv.Itoa(len(r.b)) + " bytes after the table")
	}
	if err := Check(s); err != nil {
		return nil, err
	}
	return s, nil
}

// The wire limits bound a name and an extra field; an entry's uint16
// lengths hold them.
var _ = [1]struct{}{}[wire.MaxSymLen>>16]
