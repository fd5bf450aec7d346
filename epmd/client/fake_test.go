package client_test

// Tests against a tiny in-test daemon on 127.0.0.1:0 that sends whatever a
// test wants, including replies no real epmd would send.

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// fake is a listener whose every connection is handed to handle.
type fake struct {
	addr string
	quit chan struct{} // closed at cleanup; handlers that hold wait on it
	reqs chan []byte   // request payloads, as read by readRequest
	gone chan net.Conn // connections whose peer closed, for holdUntilPeerCloses
}

// startFake serves each connection with handle on its own goroutine and
// closes the connection when handle returns.
func startFake(t *testing.T, handle func(f *fake, conn net.Conn)) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{addr: ln.Addr().String(), quit: make(chan struct{}), reqs: make(chan []byte, 1024), gone: make(chan net.Conn, 1024)}
	t.Cleanup(func() {
		close(f.quit)
		ln.Close()
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				handle(f, conn)
			}()
		}
	}()
	return f
}

// readRequest reads one request frame and records its payload.
func (f *fake) readRequest(conn net.Conn) []byte {
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	body, err := wire.ReadRequest(conn)
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		return nil
	}
	f.reqs <- body
	return body
}

// hold keeps the connection open until the client closes it or the test
// ends, and reports a client close on f.gone.
func (f *fake) hold(conn net.Conn) {
	eof := make(chan struct{})
	go func() {
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				close(eof)
				return
			}
		}
	}()
	select {
	case <-eof:
		f.gone <- conn
	case <-f.quit:
	}
}

// replyFake answers every request with reply; if hold, it then keeps the
// connection open.
func replyFake(t *testing.T, reply []byte, hold bool) *fake {
	return startFake(t, func(f *fake, conn net.Conn) {
		f.readRequest(conn)
		conn.Write(reply)
		if hold {
			f.hold(conn)
		}
	})
}

func fakeClient(f *fake) *client.Client { return &client.Client{Addr: f.addr} }

// shortContext bounds a call that a hostile server might make hang.
func shortContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// contextFor returns a short context for a call to a server that holds the
// connection, and a roomy one (oversized replies take a while under -race)
// for a server that closes it.
func contextFor(t *testing.T, hold bool) context.Context {
	t.Helper()
	if hold {
		return shortContext(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

var (
	hdr         = []byte{0, 0, 0x11, 0x11} // port 4369
	alphaReply  = mustAppend((&wire.Port2Resp{Node: alpha}).AppendBinary(nil))
	betaReply   = mustAppend((&wire.Port2Resp{Node: beta}).AppendBinary(nil))
	hugeReply   = bytes.Repeat([]byte("name x at port 1\n"), client.MaxReplySize/17+1)
	notFound    = []byte{'w', 1}
	elapsedSlop = 10 * time.Second // a held connection must give up well before this (100 ms timeouts; slack for a loaded machine)
)

func mustAppend(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestFakeNames(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte
		hold  bool
		want  []wire.NameEntry
		err   error
	}{
		{"empty", hdr, false, nil, nil},
		{"two nodes", cat(hdr, []byte("name b at port 2\nname a b at port 1\n")), false,
			[]wire.NameEntry{{Name: "b", Port: 2}, {Name: "a b", Port: 1}}, nil},
		{"closed without reply", nil, false, nil, client.ErrClosed},
		{"short header", []byte{0, 0, 1}, false, nil, wire.ErrTruncated},
		{"line without newline", cat(hdr, []byte("name a at port 1")), false, nil, wire.ErrTruncated},
		{"garbage line", cat(hdr, []byte("hello\n")), false, nil, wire.ErrInvalid},
		{"port out of range", cat(hdr, []byte("name a at port 65536\n")), false, nil, wire.ErrInvalid},
		{"oversized", cat(hdr, hugeReply), false, nil, wire.ErrTooLarge},
		{"never closes", hdr, true, nil, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, tt.hold)
			start := time.Now()
			port, nodes, err := fakeClient(f).Names(contextFor(t, tt.hold))
			if d := time.Since(start); tt.hold && d > elapsedSlop {
				t.Errorf("Names took %v", d)
			}
			wantErr(t, "Names", err, tt.err)
			if tt.err == nil {
				if port != 4369 {
					t.Errorf("port = %d, want 4369", port)
				}
				if diff := cmp.Diff(tt.want, nodes); diff != "" {
					t.Errorf("nodes (-want +got):\n%s", diff)
				}
			}
			if got := <-f.reqs; string(got) != "n" {
				t.Errorf("request = %q, want \"n\"", got)
			}
		})
	}
}

func TestFakeNamesRawPartial(t *testing.T) {
	f := replyFake(t, cat(hdr, []byte("name a")), true)
	raw, err := fakeClient(f).NamesRaw(shortContext(t))
	wantErr(t, "NamesRaw", err, context.DeadlineExceeded)
	if !bytes.Equal(raw, cat(hdr, []byte("name a"))) {
		t.Errorf("NamesRaw returned %q with the error, want the bytes read", raw)
	}
}

// AppendNamesRaw appends what NamesRaw returns to the caller's buffer, and
// leaves the buffer as it was where NamesRaw returns nothing.
func TestFakeAppendNamesRaw(t *testing.T) {
	big := cat(hdr, bytes.Repeat([]byte("name abcdefghij at port 12345\n"), 5000)) // 150 KB: several reads, growing
	tests := []struct {
		name  string
		reply []byte
		hold  bool
		want  []byte // appended
		err   error
	}{
		{"empty", hdr, false, hdr, nil},
		{"two nodes", cat(hdr, []byte("name b at port 2\nname a at port 1\n")), false, cat(hdr, []byte("name b at port 2\nname a at port 1\n")), nil},
		{"big", big, false, big, nil},
		{"not decoded", cat(hdr, []byte("hello")), false, cat(hdr, []byte("hello")), nil},
		{"closed without reply", nil, false, nil, client.ErrClosed},
		{"short header", []byte{0, 0, 1}, false, []byte{0, 0, 1}, wire.ErrTruncated},
		{"oversized", cat(hdr, hugeReply), false, nil, wire.ErrTooLarge},
		{"never closes", cat(hdr, []byte("name a")), true, cat(hdr, []byte("name a")), context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, tt.hold)
			c := fakeClient(f)
			for _, buf := range [][]byte{nil, []byte("kept"), make([]byte, 2, 8), make([]byte, 3, 1<<20)} {
				orig := append([]byte(nil), buf...)
				got, err := c.AppendNamesRaw(contextFor(t, tt.hold), buf)
				wantErr(t, "AppendNamesRaw", err, tt.err)
				if want := append(append([]byte(nil), orig...), tt.want...); !bytes.Equal(got, want) {
					t.Errorf("AppendNamesRaw(%d/%d bytes) = %.60q..., want %.60q...", len(buf), cap(buf), got, want)
				}
				if buf == nil && len(tt.want) == 0 && got != nil {
					t.Errorf("AppendNamesRaw(nil) = %q, want nil", got)
				}
				// A buffer with room for the reply is used, not replaced.
				if cap(buf)-len(buf) >= len(tt.want)+1 && len(got) > 0 && &got[0] != &buf[:1][0] {
					t.Errorf("AppendNamesRaw(%d/%d bytes) did not read into the buffer", len(buf), cap(buf))
				}
				if got := <-f.reqs; string(got) != "n" {
					t.Errorf("request = %q, want \"n\"", got)
				}
			}
			// NamesRaw returns what AppendNamesRaw appends.
			raw, err := c.NamesRaw(contextFor(t, tt.hold))
			wantErr(t, "NamesRaw", err, tt.err)
			if !bytes.Equal(raw, tt.want) || (tt.want == nil) != (raw == nil) {
				t.Errorf("NamesRaw = %.60q..., want %.60q...", raw, tt.want)
			}
		})
	}
}

func TestFakeDump(t *testing.T) {
	good := cat(hdr, wire.AppendDumpActive(nil, wire.DumpEntry{Name: "a", Port: 1, Fd: 5}),
		wire.AppendDumpOld(nil, wire.DumpEntry{Name: "b", Port: 2, Fd: 6}))
	tests := []struct {
		name  string
		reply []byte
		want  wire.DumpResp
		err   error
	}{
		{"good", good, wire.DumpResp{Port: 4369, Active: []wire.DumpEntry{{Name: "a", Port: 1, Fd: 5}},
			Old: []wire.DumpEntry{{Name: "b", Port: 2, Fd: 6}}}, nil},
		{"closed", nil, wire.DumpResp{}, client.ErrClosed},
		{"short header", []byte{0, 0}, wire.DumpResp{}, wire.ErrTruncated},
		{"garbage", cat(hdr, []byte("garbage\x00")), wire.DumpResp{}, wire.ErrInvalid},
		{"no NUL", cat(hdr, []byte("active name     <a> at port 1, fd = 5\n")), wire.DumpResp{}, wire.ErrTruncated},
		{"oversized", cat(hdr, bytes.Repeat([]byte{0}, client.MaxReplySize)), wire.DumpResp{}, wire.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, false)
			got, err := fakeClient(f).Dump(contextFor(t, false))
			wantErr(t, "Dump", err, tt.err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Dump (-want +got):\n%s", diff)
			}
			if got := <-f.reqs; string(got) != "d" {
				t.Errorf("request = %q, want \"d\"", got)
			}
		})
	}
}

func TestFakeLookup(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte
		hold  bool
		want  wire.Node
		err   error
	}{
		{"found", alphaReply, false, alpha, nil},
		{"found with NULs in extra", betaReply, false, beta, nil},
		{"not found", notFound, false, wire.Node{}, client.ErrNotFound},
		{"unknown result", []byte{'w', 2}, false, wire.Node{}, client.ErrNotFound},
		{"closed", nil, false, wire.Node{}, client.ErrClosed},
		{"tag only", []byte{'w'}, false, wire.Node{}, wire.ErrTruncated},
		{"truncated head", alphaReply[:7], false, wire.Node{}, wire.ErrTruncated},
		{"truncated name", alphaReply[:14], false, wire.Node{}, wire.ErrTruncated},
		{"truncated extra", betaReply[:len(betaReply)-1], false, wire.Node{}, wire.ErrTruncated},
		{"Nlen beyond reply", cat(alphaReply[:12], []byte{0xff, 0xff, 'a'}), false, wire.Node{}, wire.ErrTruncated},
		{"trailing bytes", cat(alphaReply, []byte("x")), false, wire.Node{}, wire.ErrTrailingData},
		{"not found, trailing", []byte{'w', 1, 0}, false, wire.Node{}, wire.ErrTrailingData},
		{"wrong tag", []byte{'v', 0, 0, 0, 0, 1}, false, wire.Node{}, wire.ErrUnknownTag},
		{"oversized", cat(alphaReply, bytes.Repeat([]byte("x"), 200000)), false, wire.Node{}, wire.ErrTooLarge},
		{"reply but no close", alphaReply, true, wire.Node{}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, tt.hold)
			got, err := fakeClient(f).Lookup(contextFor(t, tt.hold), "alpha")
			wantErr(t, "Lookup", err, tt.err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup (-want +got):\n%s", diff)
			}
			if got := <-f.reqs; string(got) != "zalpha" {
				t.Errorf("request = %q, want \"zalpha\"", got)
			}
		})
	}
}

func TestFakeKill(t *testing.T) {
	tests := []struct {
		name    string
		reply   []byte
		raw     string
		rawErr  error
		ok      bool
		killErr error
	}{
		{"OK", []byte("OK"), "OK", nil, true, nil},
		{"NO", []byte("NO"), "NO", nil, false, nil},
		{"more than 2 bytes", []byte("OKAY"), "OK", nil, true, nil},
		{"other 2 bytes", []byte("XY"), "XY", nil, false, wire.ErrInvalid},
		{"1 byte", []byte("O"), "O", wire.ErrTruncated, false, wire.ErrTruncated},
		{"nothing", nil, "", client.ErrClosed, false, client.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, false)
			c := fakeClient(f)
			raw, err := c.KillRaw(shortContext(t))
			wantErr(t, "KillRaw", err, tt.rawErr)
			if string(raw) != tt.raw {
				t.Errorf("KillRaw = %q, want %q", raw, tt.raw)
			}
			ok, err := c.Kill(shortContext(t))
			wantErr(t, "Kill", err, tt.killErr)
			if ok != tt.ok {
				t.Errorf("Kill = %v, want %v", ok, tt.ok)
			}
			for range 2 {
				if got := <-f.reqs; string(got) != "k" {
					t.Errorf("request = %q, want \"k\"", got)
				}
			}
		})
	}
}

func TestFakeStop(t *testing.T) {
	tests := []struct {
		name    string
		reply   []byte
		raw     string
		rawErr  error
		stopped bool
		stopErr error
	}{
		{"STOPPED", []byte("STOPPED"), "STOPPED", nil, true, nil},
		{"NOEXISTSTOPPED", []byte("NOEXISTSTOPPED"), "NOEXIST", nil, false, nil},
		{"garbage", []byte("GARBAGE"), "GARBAGE", nil, false, wire.ErrInvalid},
		{"short", []byte("STOP"), "STOP", wire.ErrTruncated, false, wire.ErrTruncated},
		{"nothing", nil, "", client.ErrClosed, false, client.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, false)
			c := fakeClient(f)
			raw, err := c.StopRaw(shortContext(t), "foo")
			wantErr(t, "StopRaw", err, tt.rawErr)
			if string(raw) != tt.raw {
				t.Errorf("StopRaw = %q, want %q", raw, tt.raw)
			}
			stopped, err := c.Stop(shortContext(t), "foo")
			wantErr(t, "Stop", err, tt.stopErr)
			if stopped != tt.stopped {
				t.Errorf("Stop = %v, want %v", stopped, tt.stopped)
			}
			for range 2 {
				if got := <-f.reqs; string(got) != "sfoo" {
					t.Errorf("request = %q, want \"sfoo\"", got)
				}
			}
		})
	}
}

func TestFakeRegister(t *testing.T) {
	tests := []struct {
		name     string
		reply    []byte
		hold     bool // keep the connection open after the reply, as a daemon does
		tag      wire.Tag
		creation uint32
		err      error
	}{
		{"v ok", []byte{'v', 0, 0x6b, 0x02, 0xb1, 0xb1}, true, wire.TagAlive2XResp, 0x6b02b1b1, nil},
		{"y ok", []byte{'y', 0, 0, 2}, true, wire.TagAlive2Resp, 2, nil},
		{"v refused", []byte{'v', 1, 0, 0, 0, 0x63}, true, 0, 0, client.ErrRefused},
		{"y refused", []byte{'y', 1, 0, 0x63}, true, 0, 0, client.ErrRefused},
		{"closed", nil, false, 0, 0, client.ErrClosed},
		{"wrong tag", []byte{'w', 0, 0, 0}, true, 0, 0, wire.ErrUnknownTag},
		{"tag only", []byte{'v'}, false, 0, 0, wire.ErrTruncated},
		{"truncated v", []byte{'v', 0, 0, 0, 1}, false, 0, 0, wire.ErrTruncated},
		{"truncated y", []byte{'y', 0, 0}, false, 0, 0, wire.ErrTruncated},
		{"no reply", nil, true, 0, 0, context.DeadlineExceeded},
		{"partial reply", []byte{'v', 0}, true, 0, 0, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := replyFake(t, tt.reply, tt.hold)
			r, err := fakeClient(f).Register(shortContext(t), alpha)
			wantErr(t, "Register", err, tt.err)
			want := mustAppend((&wire.Alive2Req{Node: alpha}).AppendBinary(nil))
			if got := <-f.reqs; !bytes.Equal(got, want) {
				t.Errorf("request = %q, want %q", got, want)
			}
			if err == nil {
				if r.ReplyTag() != tt.tag || r.Creation() != tt.creation {
					t.Errorf("reply %v creation %#x, want %v %#x", r.ReplyTag(), r.Creation(), tt.tag, tt.creation)
				}
				select {
				case <-r.Done():
					t.Fatalf("Done closed while registered: %v", r.Err())
				case <-time.After(50 * time.Millisecond):
				}
				if err := r.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			} else if r != nil {
				t.Error("Register returned a Registration with its error")
			}
			if tt.hold {
				// The client closes its side: after Close, or at once after a failure.
				select {
				case <-f.gone:
				case <-time.After(5 * time.Second):
					t.Error("client left the connection open")
				}
			}
		})
	}
}

func TestFakeRegisterRefusedError(t *testing.T) {
	f := replyFake(t, []byte{'v', 7, 0, 0, 0, 0x63}, true)
	_, err := fakeClient(f).Register(shortContext(t), alpha)
	var re *client.RegisterError
	if !errors.As(err, &re) {
		t.Fatalf("Register error = %v, want a *RegisterError", err)
	}
	if diff := cmp.Diff(&client.RegisterError{Name: "alpha", Result: 7, Creation: 99}, re); diff != "" {
		t.Errorf("RegisterError (-want +got):\n%s", diff)
	}
	if got, want := err.Error(), `epmd: registration of "alpha" refused (result 7)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// The daemon ends the registration: Done fires and Err says why.
func TestFakeRegistrationEnded(t *testing.T) {
	ok := []byte{'v', 0, 0, 0, 0, 5}
	tests := []struct {
		name  string
		reply []byte // sent at once
		after func(conn net.Conn)
		err   error
	}{
		{"daemon closes", ok, func(conn net.Conn) {}, client.ErrClosed},
		{"daemon resets", ok, func(conn net.Conn) { conn.(*net.TCPConn).SetLinger(0) }, client.ErrClosed},
		{"bytes after the reply", ok, func(conn net.Conn) { conn.Write([]byte("junk")); time.Sleep(time.Second) }, wire.ErrTrailingData},
		{"reply too long in one write", append(ok, 0), func(conn net.Conn) { time.Sleep(time.Second) }, wire.ErrTrailingData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			f := startFake(t, func(f *fake, conn net.Conn) {
				f.readRequest(conn)
				conn.Write(tt.reply)
				<-release
				tt.after(conn)
			})
			r, err := fakeClient(f).Register(shortContext(t), alpha)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Creation() != 5 {
				t.Errorf("Creation = %d, want 5", r.Creation())
			}
			if len(tt.reply) == len(ok) && r.Err() != nil {
				t.Errorf("Err while registered = %v", r.Err())
			}
			close(release)
			waitDone(t, r)
			wantErr(t, "Err", r.Err(), tt.err)
			if err := r.Close(); err != nil {
				t.Errorf("Close after the daemon ended it: %v", err)
			}
		})
	}
}

func TestFakeResetBeforeReply(t *testing.T) {
	f := startFake(t, func(f *fake, conn net.Conn) {
		f.readRequest(conn)
		conn.(*net.TCPConn).SetLinger(0) // close sends RST
	})
	c := fakeClient(f)
	_, _, err := c.Names(shortContext(t))
	wantErr(t, "Names", err, client.ErrClosed)
	_, err = c.Lookup(shortContext(t), "a")
	wantErr(t, "Lookup", err, client.ErrClosed)
	_, err = c.Kill(shortContext(t))
	wantErr(t, "Kill", err, client.ErrClosed)
	_, err = c.Register(shortContext(t), alpha)
	wantErr(t, "Register", err, client.ErrClosed)
}

func TestFakeCloseBeforeRequest(t *testing.T) {
	f := startFake(t, func(f *fake, conn net.Conn) {}) // accept, close at once
	c := fakeClient(f)
	_, _, err := c.Names(shortContext(t))
	if err == nil {
		t.Fatal("Names succeeded")
	}
	_, err = c.Register(shortContext(t), alpha)
	if err == nil {
		t.Fatal("Register succeeded")
	}
}

func TestTimeoutField(t *testing.T) {
	f := replyFake(t, nil, true)
	c := &client.Client{Addr: f.addr, Timeout: 100 * time.Millisecond}
	start := time.Now()
	_, err := c.Lookup(context.Background(), "a")
	wantErr(t, "Lookup", err, context.DeadlineExceeded)
	_, err = c.Register(context.Background(), alpha)
	wantErr(t, "Register", err, context.DeadlineExceeded)
	if d := time.Since(start); d > elapsedSlop {
		t.Errorf("two timed-out requests took %v", d)
	}
}

func TestCanceledContext(t *testing.T) {
	f := replyFake(t, notFound, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fakeClient(f).Lookup(ctx, "a")
	wantErr(t, "Lookup", err, context.Canceled)
	_, err = fakeClient(f).Register(ctx, alpha)
	wantErr(t, "Register", err, context.Canceled)
}

// A registration outlives the context and the Timeout of Register.
func TestRegistrationOutlivesContext(t *testing.T) {
	f := replyFake(t, []byte{'v', 0, 0, 0, 0, 5}, true)
	c := &client.Client{Addr: f.addr, Timeout: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := c.Register(ctx, alpha)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-r.Done():
		t.Fatalf("registration ended with its context: %v", r.Err())
	case <-time.After(300 * time.Millisecond):
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRequestsRefusedBeforeSending(t *testing.T) {
	f := startFake(t, func(f *fake, conn net.Conn) { f.readRequest(conn) })
	c := fakeClient(f)
	ctx := shortContext(t)
	_, err := c.Lookup(ctx, "")
	wantErr(t, "Lookup(\"\")", err, wire.ErrInvalid)
	_, err = c.Lookup(ctx, "a\x00b")
	wantErr(t, "Lookup(NUL)", err, wire.ErrInvalid)
	_, err = c.Lookup(ctx, strings.Repeat("a", wire.MaxRequestLen))
	wantErr(t, "Lookup(long)", err, wire.ErrFrameSize)
	_, err = c.Register(ctx, wire.Node{Name: "a\x00b"})
	wantErr(t, "Register(NUL)", err, wire.ErrInvalid)
	_, err = c.Register(ctx, wire.Node{Name: "a", Extra: strings.Repeat("x", 4000)})
	wantErr(t, "Register(long)", err, wire.ErrFrameSize)
	_, err = c.Stop(ctx, "a\x00")
	wantErr(t, "Stop(NUL)", err, wire.ErrInvalid)
	select {
	case req := <-f.reqs:
		t.Errorf("fake received %q", req)
	default:
	}
}

func TestDialErrors(t *testing.T) {
	ctx := shortContext(t)
	p1, p2 := closedAddr(t), closedAddr(t)
	c := &client.Client{Addr: p1, Fallback: []string{p2}}
	_, _, err := c.Names(ctx)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Names with nothing listening: %v, want ECONNREFUSED", err)
	}
	if errors.Is(err, client.ErrClosed) {
		t.Errorf("dial error %v matches ErrClosed", err)
	}
	for _, addr := range []string{p1, p2} {
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("error %q does not mention %s", err, addr)
		}
	}
	_, err = c.Register(ctx, alpha)
	wantErr(t, "Register", err, syscall.ECONNREFUSED)
	_, err = c.Kill(ctx)
	wantErr(t, "Kill", err, syscall.ECONNREFUSED)

	// A dialer that is given is used.
	c = &client.Client{Addr: p1, Dialer: &net.Dialer{Timeout: time.Second}}
	_, err = c.DumpRaw(ctx)
	wantErr(t, "DumpRaw", err, syscall.ECONNREFUSED)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

func TestLocal(t *testing.T) {
	if diff := cmp.Diff([]string{"[::1]:4369", "127.0.0.1:4369"}, client.Local(4369)); diff != "" {
		t.Errorf("Local (-want +got):\n%s", diff)
	}
	c := client.NewLocal(14369)
	if c.Addr != "[::1]:14369" || !cmp.Equal(c.Fallback, []string{"127.0.0.1:14369"}) {
		t.Errorf("NewLocal = %+v", c)
	}
}

// Random replies, some starting like real ones, must give an error or a
// decoded value: never a panic or a hang.
func TestFakeRandomReplies(t *testing.T) {
	replies := make(chan []byte)
	f := startFake(t, func(f *fake, conn net.Conn) {
		f.readRequest(conn)
		conn.Write(<-replies)
	})
	c := fakeClient(f)
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := [][]byte{nil, {'w', 0}, {'w', 1}, {'v', 0}, {'y', 0}, hdr, []byte("OK"), []byte("STOP"), alphaReply[:12]}
	ops := []func(ctx context.Context) error{
		func(ctx context.Context) error { _, _, err := c.Names(ctx); return err },
		func(ctx context.Context) error { _, err := c.Dump(ctx); return err },
		func(ctx context.Context) error { _, err := c.Lookup(ctx, "a"); return err },
		func(ctx context.Context) error { _, err := c.Kill(ctx); return err },
		func(ctx context.Context) error { _, err := c.Stop(ctx, "a"); return err },
		func(ctx context.Context) error {
			r, err := c.Register(ctx, alpha)
			if err == nil {
				r.Close()
			}
			return err
		},
	}
	for i := range 500 {
		reply := append([]byte(nil), prefixes[rng.IntN(len(prefixes))]...)
		for range rng.IntN(24) {
			reply = append(reply, byte(rng.IntN(256)))
		}
		op := ops[i%len(ops)]
		// Generous bounds: the point is that no reply makes the client
		// hang, and a loaded machine can be slow to schedule the fake.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan error, 1)
		go func() { done <- op(ctx) }()
		replies <- reply
		select {
		case err := <-done:
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("op %d on reply %q: %v", i%len(ops), reply, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("op %d hung on reply %q", i%len(ops), reply)
		}
		cancel()
	}
}
