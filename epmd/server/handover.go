package server

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopmd/gopmd/epmd/handover"
	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/snapshot"
	"github.com/gopmd/gopmd/fsm"
)

// A handover passes the owner's whole state to another process: Freeze
// stops accepting, lets the requests already accepted finish, and returns
// the listening sockets, every kept socket and the snapshot of the table;
// the other process builds its server with Restore. Thaw undoes a Freeze
// whose handover failed: the server goes on as if nothing had happened.
// The listening sockets are never closed meanwhile, so new connections
// wait in their backlog.

// Names of the handed-over descriptors. systemd's FDNAME allows no colon.
const (
	ListenerPrefix = "gopmd-listen-"
	ConnPrefix     = "gopmd-conn-"
	SnapshotName   = "gopmd-snapshot"
)

// DefaultDrain bounds how long Freeze waits for the requests already
// accepted (a request still arriving, a reply still leaving, an ALIVE2
// waiting for its name's holder) to finish. What is left then ends as a
// packet timeout would end it.
const DefaultDrain = time.Second

// ErrHandoverUnsupported is the error of Freeze and Restore with a backend
// that cannot hand over its sockets (the portable one).
var ErrHandoverUnsupported = errors.New("server: handing over the sockets needs the epoll backend")

// handoverBackend is what a backend that hands over its sockets does, on
// the owner goroutine.
type handoverBackend interface {
	// freeze stops accepting and watching kept sockets; thaw undoes it.
	freeze()
	thaw()
	// busy reports connections still under way that the owner does not
	// hold (pending requests); expire ends them as a timeout would.
	busy() bool
	expire()
	// listenerFiles returns duplicates of the listening sockets.
	listenerFiles() ([]*os.File, error)
	// adopt makes c, a restored kept socket, the backend's.
	adopt(c *conn) error
}

// Frozen is a frozen server's state, to hand over.
type Frozen struct {
	// Snapshot is the encoded epmd/snapshot of the table and kept sockets.
	Snapshot []byte
	// Listeners are duplicates of the listening sockets (ListenerPrefix
	// and their index); Conns of the kept sockets (ConnPrefix and their
	// connection id). The caller closes them.
	Listeners, Conns []handover.NamedFile
}

// Close closes the duplicates.
func (f *Frozen) Close() {
	for _, nf := range append(f.Listeners, f.Conns...) {
		nf.File.Close()
	}
}

// Freeze stops accepting, waits up to drain (0: DefaultDrain) for the
// requests under way, ends those still unfinished, and returns the state
// to hand over. Until Thaw, the server neither accepts nor watches its kept
// sockets. On an error the server is thawed.
func (s *Server) Freeze(ctx context.Context, drain time.Duration) (*Frozen, error) {
	if drain <= 0 {
		drain = DefaultDrain
	}
	var err error
	s.query(func() {
		hb, ok := s.be.(handoverBackend)
		switch {
		case !ok:
			err = ErrHandoverUnsupported
		case s.o.stopping:
			err = errors.New("server: shutting down")
		case s.o.frozen:
			err = errors.New("server: already frozen")
		default:
			s.o.frozen = true
			hb.freeze()
		}
	})
	if err != nil {
		return nil, err
	}
	until := time.Now().Add(drain)
	var fr *Frozen
	for done := false; !done; {
		s.query(func() {
			if s.o.stopping {
				err, done = errors.New("server: shut down while freezing"), true
				return
			}
			hb := s.be.(handoverBackend)
			if s.under() || hb.busy() {
				if time.Now().Before(until) && ctx.Err() == nil {
					return
				}
				s.log.Info("upgrade: ending requests still under way", "after", drain)
				hb.expire()
				s.expireOwn()
				if s.under() || hb.busy() {
					return // the next look
				}
			}
			fr, err = s.freezeState(hb)
			done = true
		})
		if !done {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if err != nil {
		s.Thaw()
		return nil, err
	}
	return fr, nil
}

// under reports owner's connections still under way: a reply being
// written, a probe waiting.
func (s *Server) under() bool {
	if len(s.o.probing) > 0 {
		return true
	}
	for _, c := range s.o.conns {
		if !c.kept || c.unfinished() || c.probe != nil {
			return true
		}
	}
	return false
}

// expireOwn ends the owner's connections still under way as their
// timeout would: a reply that is not written fails; a probe is answered
// as if its holder were alive.
func (s *Server) expireOwn() {
	for _, c := range s.o.probing {
		if c.probe != nil && !c.closed {
			c.probe = nil
			s.exec(c, s.step(c, fsm.OwnerProbed{Gone: false}))
		}
	}
	s.o.probing = nil
	for _, c := range s.o.conns {
		if c.unfinished() && !c.closed {
			// A reply still being written, or still waiting for its
			// encoding: it fails as at its write deadline.
			c.w.out, c.w.encoding = nil, false
			s.sent(c, errTimedOut)
		}
	}
}

var errTimedOut = errors.New("timed out while handing over")

// freezeState snapshots the owner's state. Owner only, every connection
// kept.
func (s *Server) freezeState(hb handoverBackend) (*Frozen, error) {
	o := &s.o
	snap := &snapshot.Snapshot{NextConn: o.nextID + 1, Table: o.reg.Export()}
	fr := &Frozen{}
	ok := false
	defer func() {
		if !ok {
			fr.Close()
		}
	}()
	lfs, err := hb.listenerFiles()
	if err != nil {
		return nil, err
	}
	for i, f := range lfs {
		fr.Listeners = append(fr.Listeners, handover.NamedFile{Name: ListenerPrefix + strconv.Itoa(i), File: f})
	}
	for id, c := range o.conns {
		var st snapshot.SocketState
		switch c.m.State() {
		case fsm.Registered:
			st = snapshot.Registered
		case fsm.Refused:
			st = snapshot.Refused
		default:
			return nil, errors.New("server: connection " + strconv.FormatUint(uint64(id), 10) + " is " + c.m.State().String())
		}
		f, err := dupFile(c.fd, ConnPrefix+strconv.FormatUint(uint64(id), 10))
		if err != nil {
			return nil, err
		}
		fr.Conns = append(fr.Conns, handover.NamedFile{Name: f.Name(), File: f})
		snap.Sockets = append(snap.Sockets, snapshot.Socket{Conn: id, State: st})
	}
	if fr.Snapshot, err = snapshot.Encode(snap); err != nil {
		return nil, err
	}
	ok = true
	return fr, nil
}

// Thaw resumes a frozen server: it accepts again and watches its kept
// sockets, whatever happened to them meanwhile.
func (s *Server) Thaw() {
	s.query(func() {
		if !s.o.frozen || s.o.stopping {
			return
		}
		s.o.frozen = false
		s.be.(handoverBackend).thaw()
		for _, c := range s.o.conns {
			if c.kept && !c.closed {
				if err := s.be.keep(c); err != nil {
					s.log.Error("cannot watch a registered connection", "conn", uint64(c.id), "err", err)
					s.exec(c, s.step(c, fsm.PeerClosed{Err: err}))
				}
			}
		}
	})
}

// Abandon ends a server whose state another process has taken over: the
// owner returns without closing any socket (the process's exit closes its
// own descriptors; the sockets live on in the other process).
func (s *Server) Abandon() {
	s.query(func() {
		if s.o.stopping {
			return
		}
		s.o.stopping = true
		clear(s.o.conns)
		s.o.probing = nil
		close(s.done)
		s.be.(handoverBackend).freeze()
		s.be.stop()
	})
}

// Restore builds a server, as NewErr does, holding the state of a
// snapshot (epmd/snapshot) and its kept sockets: conns maps each
// snapshot socket's ConnPrefix name to its descriptor. The files are
// closed (the server keeps duplicates). A socket whose peer has gone
// meanwhile is found so at once, and its name freed, as when its peer
// closes it. Listeners are passed to Serve as usual.
func Restore(cfg Config, snapBytes []byte, conns map[string]*os.File) (*Server, error) {
	defer func() {
		for _, f := range conns {
			f.Close()
		}
	}()
	snap, err := snapshot.Decode(snapBytes)
	if err != nil {
		return nil, err
	}
	maxOld := registry.MaxRemembered
	if cfg.Debug > 0 {
		maxOld = registry.DebugMaxRemembered
	}
	fds := make(map[registry.ConnID]int, len(snap.Sockets))
	closeFds := func() {
		for _, fd := range fds {
			closeFd(fd)
		}
	}
	for _, so := range snap.Sockets {
		name := ConnPrefix + strconv.FormatUint(uint64(so.Conn), 10)
		f := conns[name]
		if f == nil {
			closeFds()
			return nil, errors.New("server: no descriptor for " + name)
		}
		fd, err := dupFd(f)
		if err != nil {
			closeFds()
			return nil, err
		}
		fds[so.Conn] = fd
	}
	for name := range conns {
		id, err := strconv.ParseUint(strings.TrimPrefix(name, ConnPrefix), 10, 64)
		if _, ok := fds[registry.ConnID(id)]; err != nil || !ok {
			closeFds()
			return nil, errors.New("server: descriptor " + name + " is not in the snapshot")
		}
	}
	// The DUMP of a handed-over node shows its descriptor here.
	for i := range snap.Table.Live {
		snap.Table.Live[i].Fd = fds[snap.Table.Live[i].Owner]
	}
	reg, err := registry.Import(snap.Table, maxOld)
	if err != nil {
		closeFds()
		return nil, err
	}
	names := make(map[registry.ConnID]string, len(snap.Table.Live))
	for _, e := range snap.Table.Live {
		names[e.Owner] = e.Name
	}
	s, err := newServer(cfg, nil)
	if err != nil {
		closeFds()
		return nil, err
	}
	s.query(func() {
		hb, ok := s.be.(handoverBackend)
		if !ok {
			err = ErrHandoverUnsupported
			return
		}
		o := &s.o
		o.reg = reg
		o.nextID = snap.NextConn - 1
		var restored []*conn
		for _, so := range snap.Sockets {
			st := fsm.Registered
			if so.State == snapshot.Refused {
				st = fsm.Refused
			}
			m, rerr := fsm.Restore(fsm.Config{ID: so.Conn, Fd: fds[so.Conn], Relaxed: s.cfg.Relaxed, Port: s.cfg.Port,
				ProbeGrace: max(s.cfg.ProbeGrace.Milliseconds(), 0)}, st, names[so.Conn])
			if rerr != nil {
				err = rerr
				return
			}
			c := &conn{id: so.Conn, m: m, fd: fds[so.Conn], persisted: true, kept: true}
			o.conns[c.id] = c
			restored = append(restored, c)
		}
		clear(fds) // the connections own them now
		for _, c := range restored {
			if aerr := hb.adopt(c); aerr != nil {
				s.log.Error("cannot watch a handed-over connection", "conn", uint64(c.id), "err", aerr)
				s.exec(c, s.step(c, fsm.PeerClosed{Err: aerr}))
			}
		}
		s.log.Debug("restored from a handover", "nodes", len(snap.Table.Live), "remembered", len(snap.Table.Remembered), "sockets", len(snap.Sockets))
	})
	if err != nil {
		closeFds()
		s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}
