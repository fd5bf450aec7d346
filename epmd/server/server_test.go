package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopmd/gopmd/epmd/epmdtest"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// t0 is the fixed clock of these tests: the time of the stock transcript in
// which a new name registered at 1795338672 got creation 1795338673.
var t0 = time.Unix(1795338672, 0)

type daemon struct {
	srv   *server.Server
	addrs []string // "127.0.0.1:P", and "[::1]:P" when IPv6 is available
}

// startServer runs a server on loopback listeners (epmdtest.NewServer)
// with the configured port 14369, so NAMES and DUMP headers read
// 00 00 38 21 as in the transcripts.
func startServer(t *testing.T, cfg server.Config) *daemon {
	t.Helper()
	if cfg.Port == 0 {
		cfg.Port = 14369
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	s := epmdtest.NewServer(t, cfg)
	return &daemon{srv: s.Server, addrs: s.Addrs}
}

func (d *daemon) addr() string { return d.addrs[0] }

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAll reads until EOF or until wait passes without EOF. It reports the
// bytes and whether the daemon closed the connection.
func readAll(t *testing.T, c net.Conn, wait time.Duration) ([]byte, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, false
			}
			return out, true // EOF or reset: closed
		}
	}
}

// exchange sends raw bytes in one write and returns the reply up to close.
func exchange(t *testing.T, addr string, raw []byte) []byte {
	t.Helper()
	c := dial(t, addr)
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	out, closed := readAll(t, c, 5*time.Second)
	if !closed {
		t.Fatalf("send %x: connection still open after reply %x", raw, out)
	}
	return out
}

func frame(body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	return wire.AppendRawFrame(nil, uint16(len(b)), b)
}

func alive2(t *testing.T, n wire.Node) []byte {
	t.Helper()
	b, err := wire.EncodeRequest(&wire.Alive2Req{Node: n})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// register sends ALIVE2 and returns the open connection and the reply.
func register(t *testing.T, addr string, n wire.Node) (net.Conn, []byte) {
	t.Helper()
	c := dial(t, addr)
	if _, err := c.Write(alive2(t, n)); err != nil {
		t.Fatal(err)
	}
	want := 6
	if n.High < 6 {
		want = 4
	}
	reply := make([]byte, want)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("ALIVE2 %q: %v", n.Name, err)
	}
	return c, reply
}

var (
	alpha = wire.Node{Name: "alpha", Port: 5555, Type: 77, Proto: 0, High: 6, Low: 5}
	beta  = wire.Node{Name: "beta", Port: 6666, Type: 72, Proto: 0, High: 5, Low: 5, Extra: "EXTRA\x00x"}
)

func hex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	for _, f := range strings.Fields(s) {
		var v byte
		for _, ch := range f {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= byte(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v |= byte(ch-'a') + 10
			default:
				t.Fatalf("bad hex %q", f)
			}
		}
		b = append(b, v)
	}
	return b
}

func wantBytes(t *testing.T, what string, want, got []byte) {
	t.Helper()
	if !bytes.Equal(want, got) {
		t.Errorf("%s:\n got %x %q\nwant %x %q", what, got, got, want, want)
	}
}

// TestTranscript replays the stock transcript of facts §14 in order, over
// every loopback family the host has.
func TestTranscript(t *testing.T) {
	families := startServer(t, server.Config{}).addrs
	for i := range families {
		name := "IPv4"
		if i == 1 {
			name = "IPv6"
		}
		t.Run(name, func(t *testing.T) {
			d := startServer(t, server.Config{})
			addr := d.addrs[i]
			names := frame([]byte("n"))
			wantBytes(t, "NAMES empty", hex(t, "00 00 38 21"), exchange(t, addr, names))
			wantBytes(t, "DUMP empty", hex(t, "00 00 38 21"), exchange(t, addr, frame([]byte("d"))))

			ac, reply := register(t, addr, alpha)
			wantBytes(t, "ALIVE2 alpha", hex(t, "76 00 6b 02 b1 b1"), reply)
			bc, reply := register(t, addr, beta)
			// 1795338673 % 3 + 1 = 2
			wantBytes(t, "ALIVE2 beta", hex(t, "79 00 00 02"), reply)
			_, reply = register(t, addr, alpha)
			wantBytes(t, "ALIVE2 alpha again", hex(t, "76 01 00 00 00 63"), reply)
			a5 := alpha
			a5.High = 5
			_, reply = register(t, addr, a5)
			wantBytes(t, "ALIVE2 v5 alpha again", hex(t, "79 01 00 63"), reply)

			wantBytes(t, "PORT2 alpha",
				hex(t, "77 00 15 b3 4d 00 00 06 00 05 00 05 61 6c 70 68 61 00 00"),
				exchange(t, addr, frame([]byte("zalpha"))))
			betaReply := hex(t, "77 00 1a 0a 48 00 00 05 00 05 00 04 62 65 74 61 00 07 45 58 54 52 41 00 78")
			wantBytes(t, "PORT2 beta", betaReply, exchange(t, addr, frame([]byte("zbeta"))))
			wantBytes(t, "PORT2 beta NUL", betaReply, exchange(t, addr, frame([]byte("zbeta\x00"))))
			wantBytes(t, "PORT2 gamma", hex(t, "77 01"), exchange(t, addr, frame([]byte("zgamma"))))

			wantBytes(t, "NAMES two",
				append(hex(t, "00 00 38 21"), "name beta at port 6666\nname alpha at port 5555\n"...),
				exchange(t, addr, names))

			var dump wire.DumpResp
			if err := dump.UnmarshalBinary(exchange(t, addr, frame([]byte("d")))); err != nil {
				t.Fatal(err)
			}
			afd, bfd := dump.Active[1].Fd, dump.Active[0].Fd
			want := wire.DumpResp{Port: 14369, Active: []wire.DumpEntry{
				{Name: "beta", Port: 6666, Fd: bfd}, {Name: "alpha", Port: 5555, Fd: afd}}}
			if diff := cmp.Diff(want, dump); diff != "" {
				t.Errorf("DUMP two (-want +got):\n%s", diff)
			}
			if afd <= 2 || bfd <= 2 || afd == bfd {
				t.Errorf("DUMP fds %d, %d: want distinct socket descriptors", afd, bfd)
			}

			bc.Close()
			waitFor(t, "beta unregistered", func() bool {
				return !bytes.Contains(exchange(t, addr, names), []byte("beta"))
			})
			want = wire.DumpResp{Port: 14369,
				Active: []wire.DumpEntry{{Name: "alpha", Port: 5555, Fd: afd}},
				Old:    []wire.DumpEntry{{Name: "beta", Port: 6666, Fd: bfd}}}
			raw := exchange(t, addr, frame([]byte("d")))
			var wantRaw []byte
			wantRaw, _ = want.AppendBinary(nil)
			wantBytes(t, "DUMP after beta closed", wantRaw, raw)

			wantBytes(t, "KILL with alpha alive", []byte("NO"), exchange(t, addr, frame([]byte("k"))))
			ac.Close()
			waitFor(t, "alpha unregistered", func() bool {
				return len(exchange(t, addr, names)) == 4
			})
			wantBytes(t, "KILL", []byte("OK"), exchange(t, addr, frame([]byte("k"))))
			select {
			case <-d.srv.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("server still running after KILL OK")
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSilentClose covers every request stock epmd drops without a reply.
func TestSilentClose(t *testing.T) {
	d := startServer(t, server.Config{})
	long := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	cases := []struct {
		name string
		raw  []byte
	}{
		{"zero length", []byte{0, 0}},
		{"zero length then bytes", []byte{0, 0, 'n'}},
		{"length 3058", append([]byte{0x0b, 0xf2}, long(3058)...)},
		{"length 65535", []byte{0xff, 0xff, 'n'}},
		{"legacy ALIVE_REQ", frame([]byte("a\x00\x01"))},
		{"legacy PORT_PLEASE_REQ", frame([]byte("palpha"))},
		{"garbage Q", frame([]byte("Q"))},
		{"NUL tag", frame([]byte{0})},
		{"NAMES+NAMES in one send", append(frame([]byte("n")), frame([]byte("n"))...)},
		{"NAMES + stray byte", append(frame([]byte("n")), 'x')},
		{"PORT2 empty", frame([]byte("z"))},
		{"PORT2 only NUL", frame([]byte("z\x00"))},
		{"PORT2 NUL inside", frame([]byte("zfo\x00o"))},
		{"PORT2 invalid UTF-8", frame([]byte("z\xff"))},
		{"PORT2 256 chars", frame([]byte("z"), long(256))},
		{"ALIVE2 13 bytes", frame(hex(t, "78 15 b3 4d 00 00 06 00 05 00 00 00 00"))},
		{"ALIVE2 Nlen too big", frame(hex(t, "78 15 b3 4d 00 00 06 00 05 00 09 61 62 00 00"))},
		{"ALIVE2 Elen too big", frame(hex(t, "78 15 b3 4d 00 00 06 00 05 00 01 61 00 05 00"))},
		{"ALIVE2 NUL in name", frame(hex(t, "78 15 b3 4d 00 00 06 00 05 00 03 61 00 62 00 00"))},
		{"ALIVE2 + another frame", append(alive2(t, alpha), frame([]byte("n"))...)},
		{"STOP not relaxed", frame([]byte("sfoo"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exchange(t, d.addr(), tc.raw); len(got) != 0 {
				t.Errorf("got reply %x, want silent close", got)
			}
		})
	}
	if n := len(exchange(t, d.addr(), frame([]byte("n")))); n != 4 {
		t.Errorf("NAMES after bad input: %d bytes, want an empty registry", n)
	}
}

func TestFrameLimits(t *testing.T) {
	d := startServer(t, server.Config{})
	body := append([]byte("n"), bytes.Repeat([]byte("j"), 3056)...)
	wantBytes(t, "len 3057 NAMES+junk", hex(t, "00 00 38 21"), exchange(t, d.addr(), frame(body)))
	// A frame sent one byte at a time still works.
	c := dial(t, d.addr())
	for _, b := range frame([]byte("zalpha")) {
		c.Write([]byte{b})
		time.Sleep(2 * time.Millisecond)
	}
	got, closed := readAll(t, c, 5*time.Second)
	if !closed {
		t.Fatal("connection open after dribbled PORT2")
	}
	wantBytes(t, "dribbled PORT2", hex(t, "77 01"), got)
}

func TestPartialFrameStaysOpenUntilTimeout(t *testing.T) {
	d := startServer(t, server.Config{PacketTimeout: 300 * time.Millisecond})
	for _, raw := range [][]byte{{0}, {0, 5}, {0, 5, 'z', 'a'}} {
		c := dial(t, d.addr())
		c.Write(raw)
		if got, closed := readAll(t, c, 100*time.Millisecond); closed || len(got) != 0 {
			t.Fatalf("%x: closed=%v reply=%x before the timeout", raw, closed, got)
		}
		if got, closed := readAll(t, c, 5*time.Second); !closed || len(got) != 0 {
			t.Fatalf("%x: closed=%v reply=%x after the timeout", raw, closed, got)
		}
	}
}

// TestDribbleCutAtPacketTimeout pins docs/differences.md #1: the timeout
// counts from accept, so a byte every 100 ms does not extend it.
func TestDribbleCutAtPacketTimeout(t *testing.T) {
	d := startServer(t, server.Config{PacketTimeout: 500 * time.Millisecond, Now: time.Now})
	c := dial(t, d.addr())
	start := time.Now()
	raw := wire.AppendRawFrame(nil, 200, bytes.Repeat([]byte("z"), 200))
	for _, b := range raw {
		if _, err := c.Write([]byte{b}); err != nil {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("dribbling connection not cut after 6 packet timeouts")
		}
		time.Sleep(100 * time.Millisecond)
		if _, closed := readAll(t, c, time.Millisecond); closed {
			return
		}
	}
	t.Fatal("dribbled frame was never cut")
}

func TestRegisteredConnection(t *testing.T) {
	d := startServer(t, server.Config{PacketTimeout: 200 * time.Millisecond})
	names := frame([]byte("n"))
	c, _ := register(t, d.addr(), alpha)
	// No timeout on a registered socket.
	time.Sleep(500 * time.Millisecond)
	wantBytes(t, "NAMES", append(hex(t, "00 00 38 21"), "name alpha at port 5555\n"...), exchange(t, d.addr(), names))
	// Any byte unregisters and closes, without a reply.
	c.Write([]byte{0})
	if got, closed := readAll(t, c, 5*time.Second); !closed || len(got) != 0 {
		t.Fatalf("stray byte: closed=%v reply=%x", closed, got)
	}
	waitFor(t, "alpha unregistered", func() bool { return len(exchange(t, d.addr(), names)) == 4 })

	// A refused registration keeps its socket open, without timeout, and
	// closing it leaves the live holder of the name alone.
	holder, _ := register(t, d.addr(), alpha)
	dup, reply := register(t, d.addr(), alpha)
	wantBytes(t, "duplicate", hex(t, "76 01 00 00 00 63"), reply)
	if _, closed := readAll(t, dup, 500*time.Millisecond); closed {
		t.Fatal("refused registration socket closed")
	}
	dup.Close()
	time.Sleep(50 * time.Millisecond)
	wantBytes(t, "NAMES after duplicate closed", append(hex(t, "00 00 38 21"), "name alpha at port 5555\n"...), exchange(t, d.addr(), names))
	holder.Close()
}

func TestRefusedRegistrations(t *testing.T) {
	d := startServer(t, server.Config{})
	cases := map[string]wire.Node{
		"invalid UTF-8": {Name: "\xff\xfe", Port: 1, Type: 77, High: 6, Low: 5},
		"overlong":      {Name: "\xc0\x80", Port: 1, Type: 77, High: 6, Low: 5},
		"surrogate":     {Name: "\xed\xa0\x80", Port: 1, Type: 77, High: 6, Low: 5},
		"256 chars":     {Name: strings.Repeat("a", 256), Port: 1, Type: 77, High: 6, Low: 5},
		"1021 bytes":    {Name: strings.Repeat("a", 1021), Port: 1, Type: 77, High: 6, Low: 5},
		"extra 1021":    {Name: "x", Port: 1, Type: 77, High: 6, Low: 5, Extra: strings.Repeat("e", 1021)},
	}
	for name, n := range cases {
		t.Run(name, func(t *testing.T) {
			_, reply := register(t, d.addr(), n)
			wantBytes(t, "reply", hex(t, "76 01 00 00 00 63"), reply)
		})
	}
	// Accepted edge cases: 255 chars, 255 four-byte chars, extra 1020,
	// empty name with one extra byte.
	ok := []wire.Node{
		{Name: strings.Repeat("b", 255), Port: 1, High: 6, Low: 5},
		{Name: strings.Repeat("\U0001F600", 255), Port: 2, High: 6, Low: 5},
		{Name: "e", Port: 3, High: 6, Low: 5, Extra: strings.Repeat("e", 1020)},
		{Name: "", Port: 4, High: 6, Low: 5, Extra: "x"},
	}
	for _, n := range ok {
		_, reply := register(t, d.addr(), n)
		if reply[1] != 0 {
			t.Errorf("register %d-byte name: %x, want success", len(n.Name), reply)
		}
	}
	got := exchange(t, d.addr(), frame([]byte("n")))
	if !bytes.Contains(got, []byte("name  at port 4\n")) {
		t.Errorf("NAMES does not list the empty name with two spaces: %q", got)
	}
	// gopmd resolves a registered 255-character name (stock cannot).
	want := frame(append([]byte("z"), strings.Repeat("b", 255)...))
	if got := exchange(t, d.addr(), want); len(got) < 2 || got[1] != 0 {
		t.Errorf("PORT2 of 255-char name: %x", got)
	}
}

func TestCreationSequences(t *testing.T) {
	d := startServer(t, server.Config{})
	var got []uint32
	for i := 0; i < 4; i++ {
		c, reply := register(t, d.addr(), alpha)
		_, cr, err := wire.DecodeAlive2Reply(reply)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, cr)
		c.Close()
		waitFor(t, "unregistered", func() bool { return len(exchange(t, d.addr(), frame([]byte("n")))) == 4 })
	}
	base := uint32(t0.Unix()) + 1
	if diff := cmp.Diff([]uint32{base, base + 1, base + 2, base + 3}, got); diff != "" {
		t.Errorf("v creations (-want +got):\n%s", diff)
	}
	got = got[:0]
	b5 := beta
	for i := 0; i < 6; i++ {
		c, reply := register(t, d.addr(), b5)
		_, cr, _ := wire.DecodeAlive2Reply(reply)
		got = append(got, cr)
		c.Close()
		waitFor(t, "unregistered", func() bool { return len(exchange(t, d.addr(), frame([]byte("n")))) == 4 })
	}
	for i := range got {
		if want := (base+uint32(i))%3 + 1; got[i] != want {
			t.Errorf("y creation %d: got %d, want %d", i, got[i], want)
		}
	}
}

func TestStop(t *testing.T) {
	d := startServer(t, server.Config{Relaxed: true})
	c, _ := register(t, d.addr(), alpha)
	wantBytes(t, "STOP alpha", []byte("STOPPED"), exchange(t, d.addr(), frame([]byte("salpha"))))
	if got, closed := readAll(t, c, 5*time.Second); !closed || len(got) != 0 {
		t.Errorf("stopped node's socket: closed=%v data=%x", closed, got)
	}
	wantBytes(t, "STOP unknown", []byte("NOEXISTSTOPPED"), exchange(t, d.addr(), frame([]byte("sxxx42"))))
	wantBytes(t, "STOP empty name", []byte("NOEXISTSTOPPED"), exchange(t, d.addr(), frame([]byte("s\x00"))))
	wantBytes(t, "STOP s alone", nil, exchange(t, d.addr(), frame([]byte("s"))))
	// The name can be registered again at once.
	_, reply := register(t, d.addr(), alpha)
	wantBytes(t, "re-register after STOP", hex(t, "76 00 6b 02 b1 b2"), reply)
	// Relaxed KILL with a node registered: OK, and the node sees EOF.
	wantBytes(t, "relaxed KILL", []byte("OK"), exchange(t, d.addr(), frame([]byte("k"))))
	<-d.srv.Done()
}

// TestShutdownClosesRegistrations pins orderly shutdown: every registered
// node sees its socket close.
func TestShutdownClosesRegistrations(t *testing.T) {
	d := startServer(t, server.Config{})
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		n := alpha
		n.Name = "n" + string(rune('0'+i))
		c, _ := register(t, d.addr(), n)
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		if _, closed := readAll(t, c, 5*time.Second); !closed {
			t.Errorf("node %d: socket still open after shutdown", i)
		}
	}
	if _, err := net.DialTimeout("tcp", d.addr(), time.Second); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

// TestRemotePeer checks the local-only rules with connections whose peer
// address the seam reports as non-local (server.RemotePeer), on the
// backend in use.
func TestRemotePeer(t *testing.T) {
	srv := server.NewFaulty(server.Config{Port: 14369, Relaxed: true}, true, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	addr := ln.Addr().String()
	for _, body := range []string{"d", "k", "sfoo"} {
		if got := exchange(t, addr, frame([]byte(body))); len(got) != 0 {
			t.Errorf("remote %q: reply %x, want silent close", body, got)
		}
	}
	c := dial(t, addr)
	c.Write(alive2(t, alpha))
	if got, closed := readAll(t, c, 5*time.Second); !closed || len(got) != 0 {
		t.Errorf("remote ALIVE2: closed=%v reply=%x", closed, got)
	}
	wantBytes(t, "remote NAMES", hex(t, "00 00 38 21"), exchange(t, addr, frame([]byte("n"))))
	wantBytes(t, "remote PORT2", hex(t, "77 01"), exchange(t, addr, frame([]byte("zalpha"))))
	select {
	case <-srv.Done():
		t.Fatal("remote KILL stopped the daemon")
	default:
	}
}

// TestConcurrentClients runs registrations and look-ups from many
// goroutines at once and checks the registry ends empty.
func TestConcurrentClients(t *testing.T) {
	d := startServer(t, server.Config{Now: time.Now})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				n := alpha
				n.Name = "node" + string(rune('a'+g))
				c, reply := register(t, d.addr(), n)
				if reply[1] != 0 {
					t.Errorf("%s: refused", n.Name)
				}
				got := exchange(t, d.addr(), frame([]byte("z"+n.Name)))
				if len(got) < 2 || got[1] != 0 {
					t.Errorf("%s: lookup %x", n.Name, got)
				}
				c.Close()
				waitFor(t, "unregistered", func() bool {
					return exchange(t, d.addr(), frame([]byte("z"+n.Name)))[1] == 1
				})
			}
		}(g)
	}
	wg.Wait()
	if live, _ := d.srv.Snapshot(); len(live) != 0 {
		t.Errorf("registry not empty: %v", live)
	}
	waitFor(t, "connections closed", func() bool { return d.srv.NumConns() == 0 })
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// TestWriteFailure pins what happens when a reply cannot be written: the
// connection is closed and forgotten, and a registration whose reply
// failed is removed (otp PR #923: no zombie registrations).
func TestWriteFailure(t *testing.T) {
	srv := server.NewFaulty(server.Config{Port: 14369}, false, func() server.WriteFault { return server.FaultError })
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	addr := ln.Addr().String()
	for _, raw := range [][]byte{frame([]byte("n")), frame([]byte("zalpha")), alive2(t, alpha)} {
		c := dial(t, addr)
		c.Write(raw)
		if got, closed := readAll(t, c, 5*time.Second); !closed || len(got) != 0 {
			t.Errorf("%x: closed=%v reply=%x, want closed without reply", raw, closed, got)
		}
	}
	waitFor(t, "connections forgotten", func() bool { return srv.NumConns() == 0 })
	if live, _ := srv.Snapshot(); len(live) != 0 {
		t.Errorf("registration survived its failed reply: %v", live)
	}
}

// TestFastRestartNeverRefused pins the fix for erlang/otp#11083: a node
// that closes its registration and registers again at once must never be
// refused because the daemon has not yet handled the old socket's FIN.
func TestFastRestartNeverRefused(t *testing.T) {
	d := startServer(t, server.Config{Now: time.Now})
	const cycles = 1000
	refused := 0
	c, _ := register(t, d.addr(), alpha)
	for i := 0; i < cycles; i++ {
		c.Close()
		var reply []byte
		c, reply = register(t, d.addr(), alpha)
		if reply[1] != 0 {
			refused++
			c.Close()
			waitFor(t, "alpha unregistered", func() bool {
				return len(exchange(t, d.addr(), frame([]byte("n")))) == 4
			})
			c, _ = register(t, d.addr(), alpha)
		}
	}
	c.Close()
	if refused > 0 {
		t.Errorf("%d of %d immediate re-registrations refused as duplicates", refused, cycles)
	}
	// A live holder is still a duplicate.
	holder, _ := register(t, d.addr(), beta)
	if _, reply := register(t, d.addr(), beta); reply[1] != 1 {
		t.Errorf("live duplicate accepted: %x", reply)
	}
	holder.Close()
}
