package server

import (
	"errors"
	"slices"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// Replies: how the bytes of a reply are made, shared and held.
//
//   - A NAMES or DUMP reply is encoded once per version of the table and
//     shared by every connection that sends that version: the registry
//     returns the same read-only entries until the table changes, so the
//     entries say which version a reply is, and the bytes are never
//     written to after they are made. A reader that does not take its
//     reply holds a reference to the shared bytes and its offset in
//     them, not a copy.
//   - A large reply that is not cached is encoded off the owner, by one
//     encoder goroutine, from those immutable entries, while the owner
//     goes on serving; the connections that asked for it wait, persisted,
//     and are closed with a reset if the daemon stops meanwhile.
//   - Pending output, the bytes of replies whose write is under way, is
//     capped across all connections (Config.MaxPendingOutput). A buffer is
//     counted once, whole, for as long as any connection is still writing
//     it: that is the memory the readers hold, since a buffer can only be
//     freed when its last reader lets go. When a write that has to wait
//     would take the total over the cap, the connections holding the
//     oldest pending buffers are reset, oldest first, until it fits.

// DefaultMaxPendingOutput is the default cap on pending output: 8 MiB.
// Only a reply the socket cannot take at once counts, for as long as its
// reader has not taken it: an honest reader takes even a large one within
// milliseconds. 8 MiB is eight NAMES replies of the largest table stock
// epmd can hold (1,019 nodes with maximal names, about 1 MB), or one DUMP
// of 8,000 such nodes; a larger reply is let through alone.
const DefaultMaxPendingOutput = 8 << 20

// asyncEntries is how many entries make a NAMES or DUMP reply large enough
// to be encoded off the owner when it is not cached (a few hundred
// microseconds of encoding, maximal names).
const asyncEntries = 256

// errOutputCap is the write failure of a connection reset to keep pending
// output under the cap.
var errOutputCap = errors.New("pending output cap reached")

// shared is an encoded reply whose write is under way on one connection
// or more. b is never written to.
type shared struct {
	b       []byte
	holders []*conn // connections still writing b, in the order they began
}

// namesKey and dumpKey say which version of the table a reply shows: the
// registry's read-only entries, compared by identity.
type namesKey struct {
	port  uint32
	nodes []wire.NameEntry
}

type dumpKey struct {
	port        uint32
	active, old []wire.DumpEntry
}

func (k namesKey) eq(o namesKey) bool { return k.port == o.port && sameSlice(k.nodes, o.nodes) }
func (k dumpKey) eq(o dumpKey) bool {
	return k.port == o.port && sameSlice(k.active, o.active) && sameSlice(k.old, o.old)
}

// sameSlice reports whether a and b are the same slice: same length, same
// first element in memory.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// encodeJob is a reply being encoded off the owner, and the connections
// waiting for it.
type encodeJob struct {
	dump    bool
	nk      namesKey
	dk      dumpKey
	resp    wire.Response
	waiters []*conn
}

// replies is the owner's state for replies.
type replies struct {
	names struct {
		key namesKey
		b   []byte
	}
	dump struct {
		key dumpKey
		b   []byte
	}
	// jobs are the encodings asked for, in order; jobs[0] is under way
	// when encoding is set. One at a time: encodings under churn never
	// hold more than one buffer in the making.
	jobs     []*encodeJob
	encoding bool

	pending      []*shared // replies with writes under way, oldest first
	pendingBytes int64     // the sum of their lengths
	resets       uint64    // connections reset for the cap, ever
}

// maxPending is the cap in force.
func (s *Server) maxPending() int64 {
	if s.cfg.MaxPendingOutput < 0 {
		return 1<<63 - 1
	}
	return s.cfg.MaxPendingOutput
}

// send carries out a Send of resp on c, rest being the actions after it:
// it encodes the reply or finds it cached, and writes it. It reports
// whether c now waits (for its encoding or for its write to finish), with
// the conn c now is; the owner goes on with c's rest when it is done.
func (s *Server) send(c *conn, resp wire.Response, rest []fsm.Action) (*conn, bool, error) {
	b, job, err := s.encode(resp)
	if err != nil {
		return c, false, err
	}
	if job != nil {
		c = s.persist(c)
		if c.w == nil {
			c.w = new(reply)
		}
		c.w.after = append([]fsm.Action(nil), rest...)
		c.w.encoding = true
		// Nothing of this socket may wake the backend while it waits.
		s.be.hold(c)
		job.waiters = append(job.waiters, c)
		return c, true, nil
	}
	return s.write(c, b, rest)
}

// write writes a reply's bytes on c; see send.
func (s *Server) write(c *conn, b []byte, rest []fsm.Action) (*conn, bool, error) {
	if s.cfg.DelayWrite > 0 {
		time.Sleep(s.cfg.DelayWrite)
	}
	done, err := s.be.send(c, b)
	if err != nil || done {
		return c, false, err
	}
	// The rest waits for the write: the actions are the machine's until
	// its next Reset, so they are copied.
	c = s.persist(c)
	if c.w == nil {
		c.w = new(reply)
	}
	c.w.after = append([]fsm.Action(nil), rest...)
	s.hold(c, b)
	return c, true, nil
}

// encode returns a reply's bytes, or the job that will make them. NAMES
// and DUMP replies are cached per version of the table; a large one not
// cached is encoded off the owner.
func (s *Server) encode(r wire.Response) ([]byte, *encodeJob, error) {
	rp := &s.o.rep
	switch m := r.(type) {
	case *wire.NamesResp:
		k := namesKey{m.Port, m.Nodes}
		if rp.names.b != nil && rp.names.key.eq(k) {
			return rp.names.b, nil, nil
		}
		for _, j := range rp.jobs {
			if !j.dump && j.nk.eq(k) {
				return nil, j, nil
			}
		}
		if len(m.Nodes) >= asyncEntries {
			return nil, s.queue(&encodeJob{nk: k, resp: m}), nil
		}
		b, err := m.AppendBinary(nil)
		if err == nil {
			rp.names.key, rp.names.b = k, b
		}
		return b, nil, err
	case *wire.DumpResp:
		k := dumpKey{m.Port, m.Active, m.Old}
		if rp.dump.b != nil && rp.dump.key.eq(k) {
			return rp.dump.b, nil, nil
		}
		for _, j := range rp.jobs {
			if j.dump && j.dk.eq(k) {
				return nil, j, nil
			}
		}
		if len(m.Active)+len(m.Old) >= asyncEntries {
			return nil, s.queue(&encodeJob{dump: true, dk: k, resp: m}), nil
		}
		b, err := m.AppendBinary(nil)
		if err == nil {
			rp.dump.key, rp.dump.b = k, b
		}
		return b, nil, err
	}
	b, err := r.AppendBinary(nil)
	return b, nil, err
}

// queue adds an encoding job, and starts it if none is under way.
func (s *Server) queue(j *encodeJob) *encodeJob {
	rp := &s.o.rep
	rp.jobs = append(rp.jobs, j)
	if !rp.encoding {
		s.startEncoding()
	}
	return j
}

// startEncoding encodes jobs[0] on a goroutine of its own: its entries
// are the registry's read-only slices, and strings, which nothing
// changes.
func (s *Server) startEncoding() {
	rp := &s.o.rep
	j := rp.jobs[0]
	rp.encoding = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b, err := j.resp.AppendBinary(make([]byte, 0, sizeHint(j.resp)))
		s.post(func() { s.encoded(j, b, err) })
	}()
}

// sizeHint is about the length of a NAMES or DUMP reply, so that a large
// one is built in one allocation.
func sizeHint(r wire.Response) int {
	n := 4
	switch m := r.(type) {
	case *wire.NamesResp:
		for _, e := range m.Nodes {
			n += len(e.Name) + 32
		}
	case *wire.DumpResp:
		for _, e := range m.Active {
			n += len(e.Name) + 56
		}
		for _, e := range m.Old {
			n += len(e.Name) + 56
		}
	}
	return n
}

// encoded is an encoding's end, on the owner: the bytes become the cache
// for their version, and the connections waiting for them go on.
func (s *Server) encoded(j *encodeJob, b []byte, err error) {
	o := &s.o
	o.g.check()
	rp := &o.rep
	// The queue's array must not keep the job, its waiters and their
	// bytes alive.
	rp.jobs[0] = nil
	rp.jobs = rp.jobs[1:]
	rp.encoding = false
	if len(rp.jobs) == 0 {
		rp.jobs = nil
	} else if !o.stopping {
		s.startEncoding()
	}
	if err == nil {
		if j.dump {
			rp.dump.key, rp.dump.b = j.dk, b
		} else {
			rp.names.key, rp.names.b = j.nk, b
		}
	}
	for _, c := range j.waiters {
		if c.closed {
			continue
		}
		acts := c.w.after
		c.w.after, c.w.encoding = nil, false
		var waits bool
		err := err
		if err == nil {
			c, waits, err = s.write(c, b, acts)
			if waits {
				continue
			}
		}
		if err != nil {
			if more := s.writeFailed(c, err); more != nil {
				acts = more
			}
		}
		s.exec(c, acts)
	}
}

// hold records that c's write of b is under way, and keeps pending output
// under the cap: when b is not pending yet and would take the total over
// it, the connections holding the oldest pending buffers are reset until
// it fits. A buffer larger than the cap alone is let through, once every
// other is gone: the table made it, and a lone reader must be able to
// take it.
func (s *Server) hold(c *conn, b []byte) {
	rp := &s.o.rep
	for _, r := range rp.pending {
		if sameSlice(r.b, b) {
			r.holders = append(r.holders, c)
			c.w.buf = r
			return
		}
	}
	limit := s.maxPending()
	need := int64(len(b))
	if rp.pendingBytes+need > limit && len(rp.pending) > 0 {
		before, conns := rp.pendingBytes, 0
		for len(rp.pending) > 0 && rp.pendingBytes+need > limit {
			victims := slices.Clone(rp.pending[0].holders)
			for _, v := range victims {
				conns++
				rp.resets++
				s.sent(v, errOutputCap)
			}
		}
		s.log.Warn("pending output cap reached: reset the connections holding the oldest replies",
			"cap", limit, "pending", before, "reply", need, "reset", conns, "resets_total", rp.resets)
	}
	r := &shared{b: b, holders: []*conn{c}}
	c.w.buf = r
	rp.pending = append(rp.pending, r)
	rp.pendingBytes += need
}

// release ends c's hold on its pending reply, if it has one.
func (s *Server) release(c *conn) {
	if c.w == nil || c.w.buf == nil {
		return
	}
	r := c.w.buf
	c.w.buf = nil
	c.w.out = nil // the epoll backend's reference
	if i := slices.Index(r.holders, c); i >= 0 {
		r.holders = slices.Delete(r.holders, i, i+1)
	}
	if len(r.holders) > 0 {
		return
	}
	rp := &s.o.rep
	if i := slices.Index(rp.pending, r); i >= 0 {
		rp.pending = slices.Delete(rp.pending, i, i+1)
		rp.pendingBytes -= int64(len(r.b))
	}
}

// unfinished reports whether c is still owed part of a reply: closing it
// then must reset it, so that its client sees an error rather than a
// reply that merely looks short (NAMES and DUMP end at the close).
func (c *conn) unfinished() bool { return c.w != nil && (c.w.buf != nil || c.w.encoding) }

// PendingOutput returns the bytes of pending output (each buffer counted
// once) and how many connections have been reset to keep it under the
// cap, for tests and diagnostics.
func (s *Server) PendingOutput() (bytes int64, resets uint64) {
	s.query(func() { bytes, resets = s.o.rep.pendingBytes, s.o.rep.resets })
	return bytes, resets
}
