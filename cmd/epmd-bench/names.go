package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"

	"github.com/gopmd/gopmd/epmd/client"
)

// namesLoad sends NAMES and reads each reply to EOF, checking that it
// lists exactly the nodes registered for the run, each at the port it was
// registered with (see namesCheck). hdrPort is the port the daemon was
// told to listen on, which its replies must carry in their header; 0
// leaves the header unchecked.
//
// The tool's own cost per NAMES would otherwise cap the rate it can
// measure (it shares the machine with the daemon), so each worker reads
// into a buffer it reuses and the reply is checked in place, without
// decoding it into strings.
func namesLoad(ctx context.Context, cl *client.Client, f figure, prefix string, nodes int, hdrPort uint16) *loadResult {
	chk := newNamesCheck(prefix, nodes, hdrPort)
	scratch := make([]namesScratch, f.Conc)
	for w := range scratch {
		scratch[w].seen = chk.newSeen()
	}
	return runLoad(ctx, loadSpec{conc: f.Conc, n: f.N, dur: f.Duration}, func(ctx context.Context, w int, _ int64) (int, error) {
		s := &scratch[w]
		raw, err := cl.AppendNamesRaw(ctx, s.buf[:0])
		s.buf = raw // on errors too: it keeps any capacity the client added
		if err != nil {
			return 0, err
		}
		return 0, chk.check(raw, s.seen)
	})
}

// namesScratch is what one worker of namesLoad reuses from one request to
// the next.
type namesScratch struct {
	buf  []byte   // the reply
	seen []uint64 // bit i: node i of the run was listed
}

// namesCheck checks NAMES replies against the nodes of a run: node i is
// named nodeName(prefix, i) and registered at nodePort(i), for i in
// [0, nodes). A reply passes when
//
//   - its 4-byte header is the daemon's port (when that is known);
//   - every line after the header is "name NAME at port PORT\n", PORT in
//     decimal without leading zeros, at most 65535;
//   - every line whose NAME starts with prefix is one of the run's nodes,
//     at its port, and no node is listed twice;
//   - and every node of the run is listed.
//
// Lines of other nodes (another program's, on a daemon given by -addr)
// are allowed, as long as they are well formed. The prefix ends in "_"
// and no other run's prefix starts with it, so no other run's node can
// pass for one of this run's.
//
// Checking 1000 lines takes the tool 30 to 50 µs, half as much again as
// the rest of the request, and the reply does not change while the run's
// nodes stay registered. So check first compares a reply with the last
// one that passed the line-by-line check (a memory compare, under 1 µs for
// 30 KB); only a reply that differs from it is checked line by line, and
// replaces it if it passes. Either way every reply is checked in full: a
// reply that passes is byte for byte one that passed the line-by-line
// check (BenchmarkNamesCheck measures both).
type namesCheck struct {
	prefix  []byte
	nodes   int
	hdrPort uint16
	full    bool // always check line by line (tests)

	passed atomic.Pointer[[]byte] // the last reply that passed checkLines
}

func newNamesCheck(prefix string, nodes int, hdrPort uint16) *namesCheck {
	return &namesCheck{prefix: []byte(prefix), nodes: nodes, hdrPort: hdrPort}
}

// newSeen returns a bitmap for checkLines.
func (c *namesCheck) newSeen() []uint64 { return make([]uint64, (c.nodes+63)/64) }

// check checks one reply; seen is the worker's bitmap from newSeen. It
// allocates only when the reply is new or wrong.
func (c *namesCheck) check(reply []byte, seen []uint64) error {
	if !c.full {
		if p := c.passed.Load(); p != nil && bytes.Equal(*p, reply) {
			return nil
		}
	}
	if err := c.checkLines(reply, seen); err != nil {
		return err
	}
	if !c.full {
		keep := bytes.Clone(reply)
		c.passed.Store(&keep)
	}
	return nil
}

// checkLines checks a reply line by line, without allocating unless it
// is wrong.
func (c *namesCheck) checkLines(reply []byte, seen []uint64) error {
	if len(reply) < 4 {
		return checkErr("NAMES reply of %d bytes", len(reply))
	}
	if c.hdrPort != 0 {
		if p := binary.BigEndian.Uint32(reply); p != uint32(c.hdrPort) {
			return checkErr("NAMES header gives port %d, the daemon's is %d", p, c.hdrPort)
		}
	}
	clear(seen)
	listed := 0
	rest := reply[4:]
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return checkErr("NAMES reply ends in an unterminated line %.80q", rest)
		}
		line := rest[:nl]
		rest = rest[nl+1:]
		name, port, ok := parseNamesLine(line)
		if !ok {
			return checkErr("malformed NAMES line %.80q", line)
		}
		if !bytes.HasPrefix(name, c.prefix) {
			continue // not this run's
		}
		i, ok := parseIndex(name[len(c.prefix):], c.nodes)
		if !ok {
			return checkErr("NAMES lists %.80q, which this run did not register", name)
		}
		if want := nodePort(i); port != want {
			return checkErr("NAMES lists %s at port %d, registered at %d", name, port, want)
		}
		bit := uint64(1) << (i & 63)
		if seen[i>>6]&bit != 0 {
			return checkErr("NAMES lists %s twice", name)
		}
		seen[i>>6] |= bit
		listed++
	}
	if listed != c.nodes {
		return checkErr("NAMES listed %d of the %d nodes", listed, c.nodes)
	}
	return nil
}

// parseNamesLine splits "name NAME at port PORT" (without its newline).
// The name is what lies between "name " and the last " at port ", as
// epmd clients read it, and is not empty; PORT is decimal without leading
// zeros, at most 65535.
func parseNamesLine(line []byte) (name []byte, port uint16, ok bool) {
	// The port, read backwards: at most 5 digits.
	d, v, mul := len(line), 0, 1
	for d > 0 && mul <= 10000 {
		ch := line[d-1]
		if ch < '0' || ch > '9' {
			break
		}
		v += int(ch-'0') * mul
		mul *= 10
		d--
	}
	digits := len(line) - d
	// Also rejects a sixth digit: then line[d-1] is a digit, not ' '.
	if digits == 0 || v > 65535 || (digits > 1 && line[d] == '0') || d < len("name x at port ") {
		return nil, 0, false
	}
	if string(line[d-len(" at port "):d]) != " at port " || string(line[:len("name ")]) != "name " {
		return nil, 0, false
	}
	return line[len("name ") : d-len(" at port ")], uint16(v), true
}

// parseIndex parses the decimal after a run's prefix, as nodeName writes
// it (digits only, no leading zero), and checks that it numbers one of
// the nodes.
func parseIndex(b []byte, nodes int) (int, bool) {
	if len(b) == 0 || len(b) > 9 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	v := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + int(ch-'0')
	}
	return v, v < nodes
}
