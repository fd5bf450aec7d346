package client

import (
	"context"
	"fmt"
	"net"

	"github.com/gopmd/gopmd/epmd/wire"
)

// NamesRaw sends NAMES_REQ and returns the reply exactly as received: the
// daemon's 4-byte port, then one "name NAME at port PORT\n" line per
// registered node. The stock command-line client (epmd -names) prints
// those lines unchanged.
//
// The reply is read until the daemon closes the connection, at most
// [MaxReplySize] bytes. A reply shorter than the 4-byte header is an error
// ([ErrClosed] when empty, else one wrapping wire.ErrTruncated); on errors
// other than these and the size limit, the bytes read so far are returned
// too.
func (c *Client) NamesRaw(ctx context.Context) ([]byte, error) {
	return c.readToEOF(ctx, nil, &wire.NamesReq{}, "NAMES reply")
}

// AppendNamesRaw is [Client.NamesRaw] reading into a buffer the caller
// provides: it sends NAMES_REQ, appends the reply to buf and returns the
// extended buffer. It reads into buf's spare capacity, growing the buffer
// geometrically only when the reply does not fit, so a caller that passes
// the previous result back as buf[:0] lists the nodes without allocating
// for the reply once the buffer is large enough.
//
// Reading and errors are as for NamesRaw, which it equals with a nil buf:
// the appended bytes are what NamesRaw would return. When NamesRaw would
// return nothing (ErrClosed, a reply over [MaxReplySize]), AppendNamesRaw
// returns buf with its length unchanged.
func (c *Client) AppendNamesRaw(ctx context.Context, buf []byte) ([]byte, error) {
	return c.readToEOF(ctx, buf, &wire.NamesReq{}, "NAMES reply")
}

// Names sends NAMES_REQ and decodes the reply. port is the daemon's
// configured port (its -port or ERL_EPMD_PORT), which may differ from the
// port dialled; nodes lists the registered nodes, most recently registered
// first as stock epmd orders them. Any node may ask; no local check applies.
func (c *Client) Names(ctx context.Context) (port uint32, nodes []wire.NameEntry, err error) {
	raw, err := c.NamesRaw(ctx)
	if err != nil {
		return 0, nil, err
	}
	var m wire.NamesResp
	if err := m.UnmarshalBinary(raw); err != nil {
		return 0, nil, err
	}
	return m.Port, m.Nodes, nil
}

// DumpRaw sends DUMP_REQ and returns the reply exactly as received: the
// daemon's 4-byte port, then NUL-terminated text entries for registered
// and remembered nodes. The daemon serves DUMP to local peers only.
// Reading and errors are as for [Client.NamesRaw].
func (c *Client) DumpRaw(ctx context.Context) ([]byte, error) {
	return c.readToEOF(ctx, nil, &wire.DumpReq{}, "DUMP reply")
}

// Dump sends DUMP_REQ and decodes the reply: the daemon's configured port,
// the registered nodes (newest first) and the remembered ones that went
// away (oldest first), each with the daemon's file descriptor for it.
func (c *Client) Dump(ctx context.Context) (wire.DumpResp, error) {
	raw, err := c.DumpRaw(ctx)
	if err != nil {
		return wire.DumpResp{}, err
	}
	var m wire.DumpResp
	if err := m.UnmarshalBinary(raw); err != nil {
		return wire.DumpResp{}, err
	}
	return m, nil
}

// readToEOF sends req and reads a NAMES-style reply, everything until
// close and at least the 4-byte port header, appending it to dst.
func (c *Client) readToEOF(ctx context.Context, dst []byte, req wire.Request, msg string) ([]byte, error) {
	raw := dst
	err := c.roundTrip(ctx, req, func(conn net.Conn) (err error) {
		raw, err = appendAll(dst, conn, MaxReplySize, msg)
		if got := len(raw) - len(dst); err == nil && got < 4 {
			err = &wire.DecodeError{Msg: msg, Field: "Port", Offset: 0, Err: wire.ErrTruncated,
				Detail: fmt.Sprintf("reply of %d bytes", got)}
		}
		return err
	})
	return raw, err
}

// Lookup asks for the node called name with PORT_PLEASE2_REQ and returns
// every field it registered with, as the daemon echoes them. It returns
// [ErrNotFound] when no such node is registered.
//
// Like an Erlang node, Lookup reads until the daemon closes the connection
// (stock epmd closes right after the reply), so a reply with bytes after
// the extra field is an error wrapping wire.ErrTrailingData. Stock epmd
// closes without a reply ([ErrClosed]) when name is not valid UTF-8 or has
// 255 characters or more. An empty name or one with a NUL byte is refused
// before anything is sent (wire.ErrInvalid).
func (c *Client) Lookup(ctx context.Context, name string) (wire.Node, error) {
	var raw []byte
	err := c.roundTrip(ctx, &wire.PortPlease2Req{Name: name}, func(conn net.Conn) (err error) {
		raw, err = readAll(conn, maxPort2Reply, "PORT2_RESP")
		return err
	})
	if err != nil {
		return wire.Node{}, err
	}
	var m wire.Port2Resp
	if err := m.UnmarshalBinary(raw); err != nil {
		return wire.Node{}, err
	}
	switch m.Result {
	case 0:
		return m.Node, nil
	case 1:
		return wire.Node{}, ErrNotFound
	}
	// Only 1 is defined; a daemon that sends another value found nothing either.
	return wire.Node{}, fmt.Errorf("%w (result %d)", ErrNotFound, m.Result)
}

// KillRaw sends KILL_REQ and returns the reply as read: exactly 2 bytes,
// fewer only with an error ([ErrClosed] when none came, else an error
// wrapping wire.ErrTruncated). The stock command-line client (epmd -kill)
// prints "Killed" for "OK" and "Killing not allowed - living nodes in
// database." for any other 2 bytes.
func (c *Client) KillRaw(ctx context.Context) ([]byte, error) {
	return c.readFixed(ctx, &wire.KillReq{}, 2, "KILL reply")
}

// Kill sends KILL_REQ. ok is true when the daemon replied "OK" and is
// exiting, false when it replied "NO": stock epmd refuses while nodes are
// registered unless it runs with -relaxed_command_check. The daemon serves
// KILL to local peers only. A reply other than "OK" or "NO" is an error
// wrapping wire.ErrInvalid.
func (c *Client) Kill(ctx context.Context) (ok bool, err error) {
	raw, err := c.KillRaw(ctx)
	if err != nil {
		return false, err
	}
	var m wire.KillResp
	if err := m.UnmarshalBinary(raw); err != nil {
		return false, err
	}
	return m.OK, nil
}

// StopRaw sends STOP_REQ for name and returns the reply as read: exactly 7
// bytes, fewer only with an error as for [Client.KillRaw]. The stock
// command-line client (epmd -stop) prints those 7 bytes.
func (c *Client) StopRaw(ctx context.Context, name string) ([]byte, error) {
	return c.readFixed(ctx, &wire.StopReq{Name: name}, 7, "STOP reply")
}

// Stop sends STOP_REQ, which unregisters the node called name by closing
// its registration connection. stopped is true for "STOPPED" and false for
// "NOEXIST" (no such node; stock epmd then sends "NOEXISTSTOPPED", of which
// only the first 7 bytes are read, as every epmd client does).
//
// Stock epmd serves STOP only to local peers and only when it runs with
// -relaxed_command_check; otherwise it closes without a reply and Stop
// returns [ErrClosed]. A reply other than "STOPPED" or "NOEXIST" is an error
// wrapping wire.ErrInvalid.
func (c *Client) Stop(ctx context.Context, name string) (stopped bool, err error) {
	raw, err := c.StopRaw(ctx, name)
	if err != nil {
		return false, err
	}
	var m wire.StopResp
	if err := m.UnmarshalBinary(raw); err != nil {
		return false, err
	}
	return m.Stopped, nil
}

// readFixed sends req and reads exactly n reply bytes.
func (c *Client) readFixed(ctx context.Context, req wire.Request, n int, msg string) ([]byte, error) {
	var raw []byte
	err := c.roundTrip(ctx, req, func(conn net.Conn) (err error) {
		raw, err = readExact(conn, n, msg)
		return err
	})
	return raw, err
}
