// Package client is a Go client of the Erlang Port Mapper Daemon (epmd). It
// lists, looks up and registers Erlang nodes, and sends the daemon's local
// administration requests (DUMP, KILL, STOP). It works with the stock C epmd
// and with gopmd alike.
//
// epmd serves one request per TCP connection and ends most replies by
// closing the connection, so every method of [Client] dials afresh. The
// exception is [Client.Register]: a registration lasts as long as its
// connection, which the returned [Registration] keeps open until
// [Registration.Close].
//
// Requests are encoded and replies decoded with package
// github.com/gopmd/gopmd/epmd/wire. A reply the client cannot make sense of
// gives an error that wraps one of wire's sentinels (wire.ErrTruncated,
// wire.ErrTrailingData, wire.ErrUnknownTag, wire.ErrInvalid, wire.ErrTooLarge),
// usually inside a *wire.DecodeError that names the field. Every read is
// capped, so a hostile daemon cannot make the client allocate without bound,
// and every request is bounded by its context and by [Client.Timeout].
//
// The protocol is described in the "EPMD Protocol" part of the Erlang
// distribution protocol guide.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/gopmd/gopmd/epmd/wire"
)

// MaxReplySize caps the NAMES and DUMP replies, which have no length field
// and end when the daemon closes the connection. Stock epmd writes about 40
// bytes per node, so 16 MiB leaves room for several hundred thousand nodes.
const MaxReplySize = 16 << 20

// maxPort2Reply is the largest PORT2_RESP the 16-bit Nlen and Elen fields
// can describe: 'w', result, 10 fixed bytes, Nlen, name, Elen, extra.
const maxPort2Reply = 2 + 10 + 2 + 0xFFFF + 2 + 0xFFFF

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotFound means PORT_PLEASE2 found no node of that name (the daemon
	// replied "w 01").
	ErrNotFound = errors.New("epmd: node not found")

	// ErrRefused means the daemon refused a registration. Stock epmd uses
	// the same result byte (1) for a name that is already registered and for
	// every validation failure (a name over 255 characters or 1020 bytes,
	// a name that is not valid UTF-8, extra data over 1020 bytes), so the
	// reason cannot be told from the reply. The error is a *RegisterError.
	ErrRefused = errors.New("epmd: registration refused")

	// ErrClosed means the daemon closed the connection without a reply, or
	// closed a registration's connection. Stock epmd closes silently when it
	// rejects a request outright: a malformed request, DUMP/KILL/STOP from a
	// non-local peer, STOP without -relaxed_command_check, a look-up of a
	// name that is not valid UTF-8 or has 255 characters.
	ErrClosed = errors.New("epmd: connection closed by the daemon")
)

// RegisterError is the error of a refused registration. It wraps
// [ErrRefused].
type RegisterError struct {
	Name     string // the name whose registration was refused
	Result   uint8  // the reply's result byte; stock epmd always sends 1
	Creation uint32 // the reply's creation; stock epmd sends 99
}

func (e *RegisterError) Error() string {
	return fmt.Sprintf("epmd: registration of %q refused (result %d)", e.Name, e.Result)
}

// Unwrap returns [ErrRefused].
func (e *RegisterError) Unwrap() error { return ErrRefused }

// Client sends requests to one epmd. The zero Client talks to the daemon
// on the local host's default port, trying "[::1]:4369" and then
// "127.0.0.1:4369" as the stock epmd command-line client does.
//
// A Client holds no connection and is safe for concurrent use; its fields
// must not change while requests are in flight.
type Client struct {
	// Addr is the daemon's address, "host:port".
	Addr string

	// Fallback lists further addresses, tried in order when dialling Addr
	// (or the previous fallback) fails. The first that accepts the TCP
	// connection serves the request. See [Local] and [NewLocal].
	Fallback []string

	// Dialer, if not nil, opens the connections; nil means a zero
	// net.Dialer.
	Dialer *net.Dialer

	// Timeout bounds each request, dialling included, on top of the
	// context passed in. Zero means no limit beyond the context. For
	// Register it bounds only the registration exchange, not the life of
	// the registration.
	Timeout time.Duration
}

// Local returns the addresses the stock epmd command-line client tries for a
// daemon on the local host, in its order: "[::1]:port" first, then
// "127.0.0.1:port".
func Local(port int) []string {
	p := strconv.Itoa(port)
	return []string{net.JoinHostPort("::1", p), net.JoinHostPort("127.0.0.1", p)}
}

// NewLocal returns a Client for the daemon on the local host's port,
// dialling the addresses of [Local] in order.
func NewLocal(port int) *Client {
	addrs := Local(port)
	return &Client{Addr: addrs[0], Fallback: addrs[1:]}
}

// addrs returns the addresses to dial, in order.
func (c *Client) addrs() []string {
	if c.Addr == "" {
		if len(c.Fallback) == 0 {
			return Local(wire.DefaultPort)
		}
		return c.Fallback
	}
	return append([]string{c.Addr}, c.Fallback...)
}

// Dial connects to the first of Addr and Fallback that accepts a TCP
// connection, bounded by ctx only ([Client.Timeout] does not apply). It is
// for callers that speak raw bytes to the daemon, such as conformance tests.
// When every address fails the error joins the dial errors.
func (c *Client) Dial(ctx context.Context) (net.Conn, error) {
	d := c.Dialer
	if d == nil {
		d = new(net.Dialer)
	}
	var errs []error
	for _, addr := range c.addrs() {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.Timeout > 0 {
		return context.WithTimeout(ctx, c.Timeout)
	}
	return context.WithCancel(ctx)
}

// longAgo is a deadline in the past: setting it makes pending I/O fail.
var longAgo = time.Unix(1, 0)

// roundTrip dials, writes req and calls read on the connection, everything
// bounded by ctx and c.Timeout; then it closes the connection.
func (c *Client) roundTrip(ctx context.Context, req wire.Request, read func(net.Conn) error) error {
	frame, err := wire.EncodeRequest(req)
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	conn, err := c.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(longAgo) })
	defer stop()
	if _, err := conn.Write(frame); err != nil {
		return ioError(ctx, err, 0)
	}
	if err := read(conn); err != nil {
		return ioError(ctx, err, -1)
	}
	return nil
}

// ioError turns an I/O error into what the caller should see: the
// context's error when the context ended (the deadline set by roundTrip is
// what interrupted the I/O), and an error wrapping ErrClosed when the peer
// reset the connection before sending anything (got == 0). got < 0 means
// the error was already classified.
func ioError(ctx context.Context, err error, got int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if got == 0 && isReset(err) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// isReset reports whether err says the peer closed or reset the connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readAll reads until EOF, at most limit bytes. It returns ErrClosed when
// the peer closed without sending anything; with another error it also
// returns the bytes read so far.
func readAll(r io.Reader, limit int64, msg string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(b)) > limit {
		return nil, &wire.DecodeError{Msg: msg, Field: "reply", Offset: int(limit), Err: wire.ErrTooLarge,
			Detail: fmt.Sprintf("reply longer than %d bytes", limit)}
	}
	if err != nil {
		return b, ioError(context.Background(), err, len(b))
	}
	if len(b) == 0 {
		return nil, ErrClosed
	}
	return b, nil
}

// minReadBuf is the smallest buffer appendAll reads into.
const minReadBuf = 4096

// appendAll is readAll appending to dst: it reads until EOF, at most limit
// bytes, into dst's spare capacity, which it grows geometrically (at least
// doubling what it has read) when full. It returns dst with the bytes read
// appended; where readAll returns nil (ErrClosed, a reply over limit) it
// returns dst unchanged.
func appendAll(dst []byte, r io.Reader, limit int, msg string) ([]byte, error) {
	start := len(dst)
	b := dst
	for {
		got := len(b) - start
		if len(b) == cap(b) {
			b = slices.Grow(b, min(max(minReadBuf, got), limit+1-got))
		}
		// Never ask for more than one byte past the limit.
		end := min(cap(b), start+limit+1)
		n, err := r.Read(b[len(b):end])
		b = b[:len(b)+n]
		got += n
		if got > limit {
			return dst, &wire.DecodeError{Msg: msg, Field: "reply", Offset: limit, Err: wire.ErrTooLarge,
				Detail: fmt.Sprintf("reply longer than %d bytes", limit)}
		}
		switch {
		case err == io.EOF:
			if got == 0 {
				return dst, ErrClosed
			}
			return b, nil
		case err != nil:
			return b, ioError(context.Background(), err, got)
		}
	}
}

// readExact reads exactly n bytes, the way the stock command-line client
// reads the KILL and STOP replies. If the peer closes first it returns
// what it got, with ErrClosed when that is nothing and an error wrapping
// wire.ErrTruncated otherwise.
func readExact(r io.Reader, n int, msg string) ([]byte, error) {
	buf := make([]byte, n)
	got, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return buf, nil
	case err == io.EOF:
		return nil, ErrClosed
	case err == io.ErrUnexpectedEOF:
		return buf[:got], &wire.DecodeError{Msg: msg, Field: "reply", Offset: got, Err: wire.ErrTruncated,
			Detail: fmt.Sprintf("connection closed after %d of %d bytes", got, n)}
	}
	return buf[:got], ioError(context.Background(), err, got)
}
