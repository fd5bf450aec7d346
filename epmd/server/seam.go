package server

import (
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// backend is the seam between the owner and the sockets. The owner calls
// every method but wake from its own goroutine; the backend calls the
// owner's handlers (arrived, event, sent, drain, idle, shutdown) from that
// goroutine too, in run.
type backend interface {
	// run is the owner goroutine's loop: it waits for sockets, timers
	// (the backend's own and idle's) and posted events (drain), until
	// stop has been called.
	run()
	// wake makes run drain the inbox soon. Any goroutine calls it.
	wake()
	// exit releases what run used, once the inbox is closed.
	exit()
	// listen starts accepting on ln; failed is called, on the owner,
	// with the error that ends it for good.
	listen(ln net.Listener, failed func(error)) error
	// stop closes the listeners and the connections the owner has not
	// seen yet, and makes run return.
	stop()

	// send writes a reply. done reports it written in full; with done
	// false and no error, the backend finishes it and then calls
	// sent(c, err). The bytes are not written to afterwards, and may be
	// shared between connections.
	send(c *conn, b []byte) (done bool, err error)
	// keep watches a kept socket: its peer's next byte, end or error is
	// reported with event.
	keep(c *conn) error
	// hold stops watching c while its ALIVE2 waits for a probe.
	hold(c *conn)
	// gone reports whether c's peer has closed or reset it or sent data
	// on it, without waiting, when the backend can tell.
	gone(c *conn) bool
	// close closes c's socket, with a reset if asked.
	close(c *conn, reset bool)
}

// goroutineLock records the owner goroutine and, when checkOwner is set
// (by the package's tests), checks that the owner's state is used on it
// alone, in the spirit of x/net/http2's serveG.
type goroutineLock struct{ id atomic.Uint64 }

// checkOwner turns on the ownership checks; the package's tests set it.
var checkOwner bool

func (g *goroutineLock) set() {
	if checkOwner {
		g.id.Store(curGoroutineID())
	}
}

func (g *goroutineLock) check() {
	if !checkOwner {
		return
	}
	if id, want := curGoroutineID(), g.id.Load(); id != want {
		panic("server: owner state used on goroutine " + strconv.FormatUint(id, 10) +
			", owner is " + strconv.FormatUint(want, 10))
	}
}

var stackBufs = sync.Pool{New: func() any { return new([64]byte) }}

// curGoroutineID parses the current goroutine's id from its stack header
// ("goroutine 42 [running]:"), as x/net/http2 does: only for the checks
// in tests. It does not allocate.
func curGoroutineID() uint64 {
	buf := stackBufs.Get().(*[64]byte)
	defer stackBufs.Put(buf)
	b := buf[:runtime.Stack(buf[:], false)]
	const prefix = "goroutine "
	if len(b) <= len(prefix) || string(b[:len(prefix)]) != prefix {
		panic("server: no goroutine id in the stack header")
	}
	var id uint64
	for _, d := range b[len(prefix):] {
		if d < '0' || d > '9' {
			break
		}
		id = id*10 + uint64(d-'0')
	}
	return id
}

// faults are failures injected at the seam, the same way in both
// backends, by the package's tests. Any field may be nil.
type faults struct {
	// peer replaces the address accept reports for a new connection.
	peer func(netip.Addr) netip.Addr
	// write is asked before each write of reply bytes; it returns what
	// happens instead of the system call, or faultNone.
	write func() writeFault
}

type writeFault int

const (
	faultNone    writeFault = iota
	faultError              // the write fails: EPIPE
	faultReset              // the write fails: ECONNRESET
	faultAgain              // nothing written: EAGAIN
	faultPartial            // half the bytes written, then EAGAIN
)
