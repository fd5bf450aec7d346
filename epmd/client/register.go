package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Register registers node with ALIVE2_REQ. On success the returned
// Registration holds the connection open; the node stays registered until
// [Registration.Close] or until the daemon closes the connection. The
// daemon serves ALIVE2 to local peers only.
//
// Erlang nodes send Type wire.NodeNormal, Proto wire.ProtoTCP4, High 6 and
// Low 5. The daemon answers ALIVE2_X_RESP, with a 32-bit creation, when
// High is 6 or more, and ALIVE2_RESP, with a creation of 1 to 3, otherwise.
// The reply must be exactly that long (read with wire.Alive2ReplyLen); any
// byte the daemon sends after it ends the registration
// (see [Registration.Err]).
//
// A refused registration gives a *[RegisterError], which wraps [ErrRefused].
// The connection is then closed, unlike what stock epmd would let a client
// do (it keeps a refused registration's socket open). A node that wire
// cannot encode (a NUL in the name, a request over wire.MaxRequestLen
// bytes) is refused before anything is sent.
//
// ctx and [Client.Timeout] bound the exchange only, not the registration.
func (c *Client) Register(ctx context.Context, node wire.Node) (*Registration, error) {
	frame, err := wire.EncodeRequest(&wire.Alive2Req{Node: node})
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	conn, err := c.Dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(longAgo) })
	reply, err := register(conn, frame)
	if !stop() {
		// The context ended and its deadline may have hit our I/O.
		conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	result, creation, err := wire.DecodeAlive2Reply(reply)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if result != 0 {
		conn.Close()
		return nil, &RegisterError{Name: node.Name, Result: result, Creation: creation}
	}
	r := &Registration{
		conn:     conn,
		node:     node,
		creation: creation,
		tag:      wire.Tag(reply[0]),
		done:     make(chan struct{}),
	}
	go r.watch()
	return r, nil
}

// register writes the ALIVE2 frame and reads the fixed-size reply.
func register(conn net.Conn, frame []byte) ([]byte, error) {
	if _, err := conn.Write(frame); err != nil {
		return nil, ioError(context.Background(), err, 0)
	}
	var buf [6]byte
	if _, err := io.ReadFull(conn, buf[:1]); err != nil {
		if err == io.EOF {
			return nil, ErrClosed
		}
		return nil, ioError(context.Background(), err, 0)
	}
	n := wire.Alive2ReplyLen(buf[0])
	if n == 0 {
		_, _, err := wire.DecodeAlive2Reply(buf[:1]) // wire.ErrUnknownTag
		return nil, err
	}
	got, err := io.ReadFull(conn, buf[1:n])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		_, _, err := wire.DecodeAlive2Reply(buf[:1+got]) // wire.ErrTruncated
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Registration is a node registered with [Client.Register]. The node stays
// registered as long as the Registration's connection is open.
type Registration struct {
	conn     net.Conn
	node     wire.Node
	creation uint32
	tag      wire.Tag

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	err       error // set before done is closed
}

// Node returns the node as registered.
func (r *Registration) Node() wire.Node { return r.node }

// Creation returns the creation the daemon assigned: a 32-bit value
// (never 0 to 3 from stock epmd) after an ALIVE2_X_RESP reply, 1 to 3
// after an ALIVE2_RESP reply.
func (r *Registration) Creation() uint32 { return r.creation }

// ReplyTag returns the tag of the daemon's reply: wire.TagAlive2XResp ('v')
// or wire.TagAlive2Resp ('y').
func (r *Registration) ReplyTag() wire.Tag { return r.tag }

// Done returns a channel that is closed when the registration has ended:
// after [Registration.Close], or when the daemon closed the connection, as
// it does for STOP of this node, for KILL, and when it exits.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err returns nil while the registration lasts. After Done is closed it
// says why: nil after [Registration.Close], [ErrClosed] when the daemon
// closed the connection, an error wrapping wire.ErrTrailingData when the
// daemon sent bytes on it (the client then closed it, which unregisters
// the node), or the read error.
func (r *Registration) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Close unregisters the node by closing the connection, and waits until
// the Registration has noticed. The daemon drops the node when it sees the
// connection close, which may be a moment after Close returns. Close is
// safe to call more than once and after the daemon has closed the
// connection.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		r.closeErr = r.conn.Close()
		if errors.Is(r.closeErr, net.ErrClosed) {
			r.closeErr = nil // the watcher got there first
		}
	})
	<-r.done
	return r.closeErr
}

// watch waits for the connection to end. The daemon never sends anything
// after the ALIVE2 reply, so any byte is a protocol error.
func (r *Registration) watch() {
	defer close(r.done)
	var buf [64]byte
	n, err := r.conn.Read(buf[:])
	switch {
	case r.closing.Load():
		r.err = nil
	case n > 0:
		r.err = &wire.DecodeError{Msg: "ALIVE2 reply", Field: "end", Offset: wire.Alive2ReplyLen(byte(r.tag)),
			Err: wire.ErrTrailingData, Detail: fmt.Sprintf("daemon sent %q on the registration connection", buf[:n])}
	case err == io.EOF:
		r.err = ErrClosed
	case isReset(err):
		r.err = fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		r.err = err
	}
	r.conn.Close()
}
