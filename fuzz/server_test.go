package fuzz_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// Timing of FuzzServerTranscript. Every read and write has a deadline.
const (
	fuzzPacketTimeout = 200 * time.Millisecond // the daemon's, so idle inputs end fast
	ioDeadline        = 3 * time.Second        // a reply must have ended by then
	settleDeadline    = 3 * time.Second        // connections must be gone by then
	maxServerInput    = 8 << 10                // longer inputs test nothing new
	keeperName        = "fuzzkeeper"
	keeperPort        = 5555
	configuredPort    = 14369 // reported in NAMES and DUMP: 00 00 38 21
)

// daemonFixture is the in-process daemon of FuzzServerTranscript, with a
// registration the test holds for the life of the daemon.
type daemonFixture struct {
	srv    *server.Server
	addr   string
	keeper net.Conn
	broken bool // a check failed: the next input gets a fresh daemon
}

var (
	fixtureMu   sync.Mutex
	fixtureOnce = new(sync.Once)
	fixture     *daemonFixture
	fixtureErr  error
)

// getDaemon starts the daemon once per process. After a failed check it is
// replaced, so that the fuzzer's minimization replays each candidate
// against a healthy daemon rather than blaming every input on the wreck.
func getDaemon(t *testing.T) *daemonFixture {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if fixture != nil && fixture.broken {
		fixture.keeper.Close()
		fixture.srv.Shutdown(t.Context())
		fixtureOnce, fixture, fixtureErr = new(sync.Once), nil, nil
	}
	fixtureOnce.Do(func() { fixture, fixtureErr = startDaemon() })
	if fixtureErr != nil {
		t.Fatalf("starting the daemon: %v", fixtureErr)
	}
	return fixture
}

func startDaemon() (*daemonFixture, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The remembered names are capped at 5, as -d does, so DUMP stays
	// short and recycled records get exercised.
	srv := server.New(server.Config{Port: configuredPort, PacketTimeout: fuzzPacketTimeout, MaxRemembered: registry.DebugMaxRemembered})
	go srv.Serve(ln)
	d := &daemonFixture{srv: srv, addr: ln.Addr().String()}
	c, err := net.DialTimeout("tcp4", d.addr, ioDeadline)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(ioDeadline))
	if _, err := c.Write(frame(alive2(keeperPort, 'M', 6, 5, keeperName, ""))); err != nil {
		return nil, err
	}
	var reply [6]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return nil, err
	}
	if result, _, err := wire.DecodeAlive2Reply(reply[:]); err != nil || result != 0 {
		return nil, errors.New("keeper registration refused: " + string(quoteBytes(reply[:])))
	}
	c.SetDeadline(time.Time{})
	d.keeper = c
	return d, nil
}

// FuzzServerTranscript sends the fuzz bytes to an in-process daemon on a
// fresh 127.0.0.1 connection, in one write, then (unless wait) half-closes
// so that an incomplete request ends at once rather than at the 200 ms
// packet timeout. It reads the reply until the daemon closes (or, for a
// kept ALIVE2 socket, until the fixed-size reply is in), then closes.
//
// Checks:
//   - the reply fits the request, as the whole-buffer Framer parse sees it:
//     nothing for a refused frame or one that does not decode; for NAMES,
//     PORT2, KILL and STOP the exact bytes (the registry holds only the
//     keeper); an ALIVE2 reply of the right form and result; a DUMP that
//     decodes. When the frame has trailing bytes, nothing, or the reply of
//     the prefix frame (the daemon may read the frame before the rest).
//   - the daemon closes every connection but the keeper's within 3 s;
//   - the daemon is healthy: NAMES answers with the 4-byte header and the
//     keeper's line, and the registry holds exactly the keeper.
func FuzzServerTranscript(f *testing.F) {
	for i, b := range frameSeeds() {
		f.Add(b, i%5 == 0)
	}
	f.Add(frame(alive2(1, 'M', 6, 5, keeperName, "")), false) // duplicate of the keeper
	f.Add(frame([]byte("z"+keeperName)), false)
	f.Add(frame([]byte("s"+keeperName)), false)
	f.Add(frame(alive2(1, 'M', 6, 5, "a\nb", "")), false) // a name NAMES cannot show
	f.Fuzz(func(t *testing.T, data []byte, wait bool) {
		if len(data) > maxServerInput {
			return
		}
		d := getDaemon(t)
		ok := false
		defer func() {
			if !ok {
				d.broken = true
			}
		}()
		reply, reset := exchange(t, d.addr, data, wait)
		checkServerReply(t, data, reply, reset)
		waitSettled(t, d)
		checkHealthy(t, d)
		ok = true
	})
}

// exchange sends data and returns what came back, and whether the
// connection was reset (which may cut the reply short).
func exchange(t *testing.T, addr string, data []byte, wait bool) ([]byte, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, ioDeadline)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioDeadline))
	if len(data) > 0 {
		if _, err := c.Write(data); err != nil && !isReset(err) {
			t.Fatalf("write: %v", err)
		}
	}
	if !wait {
		c.(*net.TCPConn).CloseWrite()
	}
	var reply []byte
	buf := make([]byte, 4096)
	for {
		// A kept ALIVE2 socket stays open: stop at the reply's size.
		if len(reply) > 0 && len(reply) == wire.Alive2ReplyLen(reply[0]) {
			return reply, false
		}
		n, err := c.Read(buf)
		reply = append(reply, buf[:n]...)
		switch {
		case err == io.EOF:
			return reply, false
		case isReset(err):
			return reply, true
		case err != nil:
			t.Fatalf("reading the reply to %q: %v (after %q)", data, err, reply)
		}
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// checkServerReply checks reply against what the daemon must answer to
// data (see FuzzServerTranscript).
func checkServerReply(t *testing.T, data, reply []byte, reset bool) {
	t.Helper()
	var fr wire.Framer
	o := feedFramer(&fr, data, nil)
	var allowed [][]byte // nil entry: the reply may be empty
	switch {
	case o.frame != nil:
		allowed = expectedReplies(t, o.frame, reply)
	case errors.Is(o.err, wire.ErrTrailingData):
		allowed = append([][]byte{nil}, expectedReplies(t, data[2:frameLen(data)], reply)...)
	default: // refused or incomplete
		allowed = [][]byte{nil}
	}
	for _, a := range allowed {
		if bytes.Equal(a, reply) || (reset && bytes.HasPrefix(a, reply)) {
			return
		}
	}
	t.Fatalf("sent %q (framer: %s), got reply %q (reset %v); want one of %q", data, o, reply, reset, allowed)
}

// expectedReplies returns the replies the daemon may give to the request
// body, when the registry holds only the keeper. reply is the actual reply,
// returned as allowed when it is valid but not predictable (creation
// numbers, DUMP's descriptors).
func expectedReplies(t *testing.T, body, reply []byte) [][]byte {
	t.Helper()
	req, err := wire.DecodeRequest(body)
	if err != nil {
		return [][]byte{nil}
	}
	header := []byte{0, 0, configuredPort >> 8, configuredPort & 0xff}
	switch req := req.(type) {
	case *wire.NamesReq:
		return [][]byte{wire.AppendNameLine(header, keeperName, keeperPort)}
	case *wire.PortPlease2Req:
		switch {
		case wire.CheckLookupName(req.Name) != nil:
			return [][]byte{nil}
		case req.Name == keeperName:
			b, _ := (&wire.Port2Resp{Node: wire.Node{Name: keeperName, Port: keeperPort,
				Type: 'M', High: 6, Low: 5}}).AppendBinary(nil)
			return [][]byte{b}
		}
		return [][]byte{{'w', 1}}
	case *wire.KillReq:
		return [][]byte{[]byte("NO")} // the keeper is registered
	case *wire.StopReq:
		return [][]byte{nil} // not relaxed: silent close
	case *wire.DumpReq:
		var m wire.DumpResp
		if err := m.UnmarshalBinary(reply); err != nil || len(m.Active) != 1 ||
			m.Active[0].Name != keeperName || m.Port != configuredPort {
			return nil
		}
		return [][]byte{reply}
	case *wire.Alive2Req:
		wantResult := uint8(0)
		if wire.CheckAlive2(&req.Node) != nil || req.Name == keeperName {
			wantResult = 1
		}
		wantLen := 4
		if req.High >= 6 {
			wantLen = 6
		}
		result, creation, err := wire.DecodeAlive2Reply(reply)
		switch {
		case err != nil, len(reply) != wantLen, result != wantResult:
			return nil
		case result == 1 && creation != wire.ErrorCreation:
			return nil
		case result == 0 && wantLen == 4 && (creation < 1 || creation > 3):
			return nil
		case result == 0 && wantLen == 6 && creation < 4:
			return nil
		}
		return [][]byte{reply}
	}
	t.Fatalf("unknown request %T", req)
	return nil
}

// waitSettled waits until the daemon has closed every connection but the
// keeper's: the input's connection and any it made the daemon open.
func waitSettled(t *testing.T, d *daemonFixture) {
	t.Helper()
	deadline := time.Now().Add(settleDeadline)
	for d.srv.NumConns() != 1 {
		if time.Now().After(deadline) {
			live, _ := d.srv.Snapshot()
			t.Fatalf("daemon still has %d connections after %v; live %+v", d.srv.NumConns(), settleDeadline, live)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkHealthy asks for NAMES on a new connection and checks the registry.
func checkHealthy(t *testing.T, d *daemonFixture) {
	t.Helper()
	reply, _ := exchange(t, d.addr, frame([]byte("n")), true)
	want := wire.AppendNameLine([]byte{0, 0, configuredPort >> 8, configuredPort & 0xff}, keeperName, keeperPort)
	if !bytes.Equal(reply, want) {
		t.Fatalf("health check: NAMES answered %q, want %q", reply, want)
	}
	live, _ := d.srv.Snapshot()
	if len(live) != 1 || live[0].Name != keeperName {
		t.Fatalf("health check: registry holds %+v, want only %q", live, keeperName)
	}
	select {
	case <-d.srv.Done():
		t.Fatal("health check: the daemon is shutting down")
	default:
	}
}
