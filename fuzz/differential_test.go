package fuzz_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// FuzzDifferential sends the same byte streams to the stock (C) epmd and to
// gopmd and compares what comes back. Both daemons are started once per
// fuzz process (each worker has its own pair) and live across inputs:
//
//   - stock: `epmd -port P -address 127.0.0.1 -relaxed_command_check -d`, a
//     child process on a free loopback port P. -d caps the remembered
//     names at 5, so that records are recycled within a few inputs (the
//     same reason FuzzServerTranscript uses Debug 1); it changes nothing
//     else on the wire;
//   - ours: server.New + Serve in-process on 127.0.0.1:0, with Port P (the
//     configured port that NAMES and DUMP report, so the headers match),
//     Relaxed and Debug 1 like stock, and ProbeGrace -1 (look at a
//     duplicate's holder once, without waiting: differences.md #11; the
//     holders here are always alive, so both daemons refuse).
//
// An input is a script (see genDiffSteps) of 1-4 connections, each sent its
// bytes in one write and then left open, and of "close connection k"
// steps. Each connection's bytes are read back according to what stock's
// read loop makes of them (the whole-buffer Framer parse): a request that
// runs is read until the daemon closes, or, for an ALIVE2 that keeps its
// socket, until the fixed-size reply is in; an incomplete frame is not read
// until the end. At the end, every connection still open on either daemon
// gets a common 100 ms window to close or send more (both daemons answer
// within a millisecond or two; the only close expected in the window, a
// STOP's victim, is sent before the STOP reply the test has already read,
// so a short window can miss only a spurious close that comes late, never
// report a false one; the window is most of each execution's time).
// Then, connection by connection, the two daemons must agree:
//
//   - on the bytes, exactly, except: an ALIVE2 success reply carries a
//     creation that depends on the clock, so only its tag and result are
//     compared, with both creations >= 4 for 'v' and both in 1..3 for 'y';
//     a DUMP reply is compared with every fd = N masked (differences.md
//     #9), after parsing it with wire.DumpResp;
//   - on whether the connection was kept open or closed, and if closed,
//     whether the client saw EOF or a reset. A daemon resets a connection
//     when it closes it with received bytes unread; with one write per
//     connection and nothing sent after, which bytes are unread depends
//     only on the daemon's reads, so this is deterministic.
//
// Expected differences (docs/differences.md) are checked as such, not
// skipped: a PORT_PLEASE2 for a 255-character name (#2) must get stock's
// silent close from stock and a well-formed PORT2_RESP from ours. The
// packet timeout (#1) never comes into play: both daemons use 60 s, and
// an incomplete request is closed by the test within a second or two.
// Logging (#13) is not looked at.
//
// Rules that keep the outcome deterministic:
//
//   - each connection's bytes go out in one write, so stock's first read
//     sees all of them (at most 3059, its first read's size); pipelined
//     or trailing bytes are therefore always "extra bytes in the same
//     read" (facts §2.2) and the request is dropped on both daemons;
//   - a request that would run as KILL_REQ ('k') gets its tag changed to
//     'K' (garbage): both daemons run relaxed, so KILL would stop them;
//   - unregistrations happen one at a time: a "close" step, and the
//     cleanup at the end, close one registered connection and wait until
//     NAMES on that daemon has changed before going on. So the remembered
//     lists, which DUMP shows and which outlive the input, stay in the same
//     order on both daemons.
//
// After each input every connection is closed, both daemons must answer
// NAMES with the header alone within 2 s, ours must hold no connection,
// and stock must still be running. After a failed check both daemons are
// replaced, so that minimization does not replay against diverged state.
//
// Skipped when the stock epmd is not installed, unless
// GOPMD_REQUIRE_ERLANG=1, which makes that a failure.
func FuzzDifferential(f *testing.F) {
	bin := stockEpmdPath(f)
	for _, s := range differentialSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		runDifferential(t, bin, script)
	})
}

// runDifferential runs one input against both daemons (see
// FuzzDifferential) and fails t on a difference no rule explains. It
// returns the open findings (the finding... constants) that explained a
// difference.
func runDifferential(t *testing.T, bin string, script []byte) (known []string) {
	t.Helper()
	steps := genDiffSteps(script)
	p := getDiffPair(t, bin)
	ok := false
	var conns []*diffConn
	defer func() {
		for _, dc := range conns {
			for i := range dc.sides {
				if dc.sides[i].c != nil {
					dc.sides[i].c.Close()
				}
			}
		}
		if !ok {
			p.broken = true
		}
	}()
	for _, st := range steps {
		if st.close < 0 {
			dc := &diffConn{data: st.data}
			dc.plan()
			conns = append(conns, dc)
			for i := range dc.sides {
				p.send(t, i, dc)
			}
			continue
		}
		dc := conns[st.close]
		for i := range dc.sides {
			p.closeMidway(t, i, dc)
		}
	}
	awaitOpen(conns, diffOpenWindow)
	for i, dc := range conns {
		msg, finding := dc.compare()
		if msg != "" {
			t.Fatalf("connection %d: %s\n%s", i, msg, transcript(steps, conns))
		}
		if finding != "" {
			known = append(known, finding)
		}
	}
	for _, dc := range conns {
		for i := range dc.sides {
			p.closeRegistered(t, i, dc)
		}
	}
	p.checkHealthy(t)
	ok = true
	return known
}

// Timing and sizes of FuzzDifferential. Every read has a deadline.
const (
	diffOpenWindow   = 100 * time.Millisecond // open after this: kept open
	diffReplyTimeout = 2 * time.Second        // a reply that must come comes by then
	diffSettle       = 2 * time.Second        // unregistrations, the final NAMES
	diffMaxConns     = 4
	diffMaxSteps     = 8
	diffMaxConnBytes = 8 << 10 // more than stock's 3059-byte first read
)

const (
	sideStock = 0
	sideOurs  = 1
)

var sideNames = [2]string{"stock", "ours"}

// stockEpmdPath returns the stock epmd, like epmd/internal/testenv's
// StockEpmd, which this package cannot import (Go's internal rule: fuzz/ is
// outside epmd/), unless GOPMD_FUZZ_REFERENCE names another (see
// referenceEnv). It skips, or fails under GOPMD_REQUIRE_ERLANG=1, when
// there is none, and fails when the epmd found is gopmd.
func stockEpmdPath(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("GOPMD_STOCK_EPMD")
	if ref := os.Getenv(referenceEnv); ref != "" {
		p = referenceEpmd(tb, ref) // a release or a path (reference_test.go)
	} else if p != "" {
		// Set explicitly: a wrong path is a mistake to report, not a
		// reason to skip.
		if _, err := exec.LookPath(p); err != nil {
			tb.Fatalf("GOPMD_STOCK_EPMD=%s: %v", p, err)
		}
	} else {
		var err error
		if p, err = exec.LookPath("epmd"); err != nil {
			msg := "stock epmd not found (FuzzDifferential compares gopmd against it); install erlang-base to run this test"
			if os.Getenv("GOPMD_REQUIRE_ERLANG") == "1" {
				tb.Fatal(msg + " [GOPMD_REQUIRE_ERLANG=1]")
			}
			tb.Skip(msg)
		}
	}
	// gopmd knows -version; stock prints its usage and exits 1.
	out, _ := exec.Command(p, "-version").CombinedOutput()
	if bytes.HasPrefix(out, []byte("gopmd ")) {
		tb.Fatalf("%s is gopmd, not the stock epmd; set GOPMD_STOCK_EPMD to the stock binary", p)
	}
	return p
}

// ---------------------------------------------------------------------------
// The script.

// diffStep is one step of an input: a new connection sent data, or the
// client closing connection close (an index into the connections so far).
type diffStep struct {
	data  []byte
	close int // -1 for a new connection
}

// diffNamePool holds the names generated requests use: ordinary ones, the
// edges of the length limits (254, 255 and 256 characters; 255 two-byte
// and 255 four-byte characters), and names stock handles oddly (empty,
// space, newline, invalid UTF-8).
var diffNamePool = []string{
	"alpha", "beta", "gamma", "a", "x y", "n@host", "ünïcödé", "",
	strings.Repeat("m", 254), strings.Repeat("l", 255), strings.Repeat("o", 256),
	strings.Repeat("é", 255), strings.Repeat("😀", 255), "bad\xff", "a\nb",
}

// Step kinds: the low four bits of a step's first byte.
const (
	diffRaw       = 0 // n (255: u16 follows), then n bytes sent as they are
	diffClose     = 1 // k: close connection k % (connections so far)
	diffAlive2    = 2 // name, flags, port(2)
	diffPort2     = 3 // name
	diffNames     = 4
	diffDump      = 5
	diffStop      = 6 // name
	diffPipelined = 7 // two requests (a selector byte and its fields each) in one write
	diffFramed    = 8 // n, then n bytes framed with their length
	// 9-15 are requests too: 9 ALIVE2, 10 PORT2, 11 NAMES, 12 DUMP, 13
	// STOP, 14 ALIVE2, 15 raw.
)

// Mutations of generated requests: the high four bits of the step's first
// byte, applied in this order to the framed request.
const (
	mutOverwrite = 0x10 // pos, value: b[pos % len] = value
	mutTruncate  = 0x20 // c: cut c % len + 1 bytes off the end
	mutAppend    = 0x40 // n, bytes: append n % 8 + 1 bytes
	mutReframe   = 0x80 // rewrite the length header to fit the bytes
)

// byteReader hands out the script's bytes; past the end it gives zeros.
type byteReader struct{ b []byte }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *byteReader) u16() int { return int(r.byte())<<8 | int(r.byte()) }

// genDiffSteps turns a fuzz input into at most diffMaxSteps steps and
// diffMaxConns connections, at least one. It is pure: the same input
// always gives the same bytes, whatever the daemons do.
func genDiffSteps(script []byte) []diffStep {
	r := &byteReader{script}
	var steps []diffStep
	conns := 0
	for len(r.b) > 0 && len(steps) < diffMaxSteps {
		op := r.byte()
		kind := op & 0x0f
		var data []byte
		switch kind {
		case diffClose:
			k := int(r.byte())
			if conns > 0 {
				steps = append(steps, diffStep{close: k % conns})
			}
			continue
		case diffRaw, 15:
			n := int(r.byte())
			if n == 255 {
				n = r.u16()
			}
			data = bytes.Clone(r.bytes(min(n, diffMaxConnBytes)))
		case diffPipelined:
			data = append(genRequest(r.byte(), r), genRequest(r.byte(), r)...)
			data = mutate(op, data, r)
		case diffFramed:
			data = mutate(op, frame(r.bytes(int(r.byte()))), r)
		default: // 2-6 and 9-14: one request
			sel := kind - diffAlive2
			if kind > diffFramed {
				sel = (kind - 9) % 5
			}
			data = mutate(op, genRequest(sel, r), r)
		}
		if conns == diffMaxConns {
			break
		}
		steps = append(steps, diffStep{data: neutralizeKill(data), close: -1})
		conns++
	}
	if conns == 0 {
		// No connection (an empty script, or only close steps): send the
		// script itself, so that every execution tests something.
		steps = []diffStep{{data: neutralizeKill(bytes.Clone(script)), close: -1}}
	}
	return steps
}

// genRequest returns a framed request: sel % 5 picks ALIVE2, PORT2, NAMES,
// DUMP or STOP; the fields come from r.
func genRequest(sel byte, r *byteReader) []byte {
	switch sel % 5 {
	case 0:
		name, _ := genName(r)
		flags := r.byte()
		port := uint16(r.u16())
		high := []uint16{6, 5, 6, 5, 0, 7, 65535, 1}[flags&7]
		typ := []byte{wire.NodeNormal, wire.NodeHidden, wire.NodeHiddenEI, 0}[flags>>3&3]
		extra := []string{"", "EXTRA\x00x", strings.Repeat("e", wire.MaxSymLen), strings.Repeat("e", wire.MaxSymLen+1)}[flags>>5&3]
		low := uint16(5)
		if flags&0x80 != 0 {
			low = 0xffff
		}
		return frame(alive2Body(port, typ, 0, high, low, uint16(len(name)), name, uint16(len(extra)), extra))
	case 1:
		name, nul := genName(r)
		b := cat("z", name)
		if nul {
			b = append(b, 0)
		}
		return frame(b)
	case 2:
		return frame([]byte("n"))
	case 3:
		return frame([]byte("d"))
	}
	name, nul := genName(r)
	b := cat("s", name)
	if nul {
		b = append(b, 0)
	}
	return frame(b)
}

// genName picks a pool name, or past the pool a name read from r (a length
// byte, then the bytes); the selector's top bit asks for a trailing NUL.
func genName(r *byteReader) (string, bool) {
	s := r.byte()
	i := int(s&0x7f) % (len(diffNamePool) + 1)
	if i < len(diffNamePool) {
		return diffNamePool[i], s&0x80 != 0
	}
	return string(r.bytes(int(r.byte()))), s&0x80 != 0
}

// mutate applies the mutations op's high bits ask for.
func mutate(op byte, b []byte, r *byteReader) []byte {
	if op&mutOverwrite != 0 && len(b) > 0 {
		pos, v := int(r.byte()), r.byte()
		b[pos%len(b)] = v
	}
	if op&mutTruncate != 0 && len(b) > 0 {
		b = b[:len(b)-(int(r.byte())%len(b)+1)]
	}
	if op&mutAppend != 0 {
		for range int(r.byte())%8 + 1 {
			b = append(b, r.byte())
		}
	}
	if op&mutReframe != 0 && len(b) >= 2 {
		n := len(b) - 2
		b[0], b[1] = byte(n>>8), byte(n)
	}
	return b
}

// neutralizeKill turns a KILL_REQ that either daemon would run into
// garbage: both run relaxed, so it would stop them. A request runs when the
// whole-buffer parse gives a frame (or, were stock to read the header
// before the rest, the prefix frame of trailing data).
func neutralizeKill(data []byte) []byte {
	var fr wire.Framer
	o := feedFramer(&fr, data, nil)
	if len(data) > 2 && data[2] == byte(wire.TagKillReq) && (o.frame != nil || errors.Is(o.err, wire.ErrTrailingData)) {
		data[2] = 'K'
	}
	return data
}

// ---------------------------------------------------------------------------
// Seeds: the stock transcripts of epmd-protocol-facts §14, as scripts.

// rawStep is a script step that sends b as it is.
func rawStep(b []byte) []byte {
	if len(b) < 255 {
		return append([]byte{diffRaw, byte(len(b))}, b...)
	}
	return append([]byte{diffRaw, 255, byte(len(b) >> 8), byte(len(b))}, b...)
}

// closeStep is a script step that closes connection k.
func closeStep(k int) []byte { return []byte{diffClose, byte(k)} }

func diffScript(steps ...[]byte) []byte { return bytes.Join(steps, nil) }

// longAlive2 is a framed ALIVE2_REQ for name padded with junk after Extra
// (which both daemons ignore) to the largest frame, 3057 bytes.
func longAlive2(name string) []byte {
	body := alive2(7, 'M', 6, 5, name, "")
	return frame(cat(body, strings.Repeat("J", wire.MaxRequestLen-len(body))))
}

func differentialSeeds() [][]byte {
	alpha := rawStep(frame(alive2(5555, 'M', 6, 5, "alpha", "")))
	beta := rawStep(frame(alive2(6666, 'H', 5, 5, "beta", "EXTRA\x00x")))
	names := rawStep(frame([]byte("n")))
	dump := rawStep(frame([]byte("d")))
	l255 := strings.Repeat("l", 255)
	seeds := [][]byte{
		diffScript(names),
		diffScript(dump),
		// ALIVE2 v6, v5, then both again: duplicates.
		diffScript(alpha, beta, rawStep(frame(alive2(5555, 'M', 6, 5, "alpha", ""))),
			rawStep(frame(alive2(5555, 'M', 5, 5, "alpha", "")))),
		diffScript(alpha, beta, rawStep(frame([]byte("zalpha"))), rawStep(frame([]byte("zbeta\x00")))),
		diffScript(alpha, beta, rawStep(frame([]byte("zgamma"))), names),
		diffScript(alpha, beta, names, dump),
		diffScript(alpha, beta, closeStep(1), dump),                 // beta closes: old/unused
		diffScript(alpha, closeStep(0), alpha, dump),                // re-registration of a remembered name
		diffScript(alpha, beta, rawStep(frame([]byte("k"))), names), // KILL (made garbage) with alpha alive
		diffScript(rawStep(frame(alive2(1, 'M', 6, 5, "foo", ""))), rawStep(frame([]byte("sfoo"))), names),
		diffScript(rawStep(frame([]byte("sxxx42"))), rawStep(frame([]byte("s")))),
		diffScript(rawStep(frame(alive2(1, 'M', 6, 5, l255, ""))), rawStep(frame(cat("z", l255)))), // difference #2
		// A 3057-byte ALIVE2 (junk after Extra) and more bytes in one write:
		// stock's first read stops at the frame, registers, and the bytes
		// left end the registration at once.
		diffScript(rawStep(cat(longAlive2("long"), "more")), names, dump),
		diffScript(rawStep(cat(longAlive2("long"), strings.Repeat("m", 3059))), names),
		diffScript(rawStep(cat(longAlive2("long"), strings.Repeat("m", 3060))), names), // open finding
		diffScript(rawStep(cat(longAlive2("long"), strings.Repeat("m", 3061))), names),
		// Generated steps: pool names, pipelining and mutations.
		{diffAlive2, 0, 0, 0x15, 0xb3, diffAlive2, 1, 9, 0x1a, 0x0a, diffStop, 0, diffDump},
		{diffPipelined, 2, 2, diffAlive2, 3, 0, 0, 1, diffPort2, 3},
		{diffAlive2 | mutTruncate, 0, 0, 0, 1, 3, diffAlive2 | mutAppend, 1, 0, 0, 1, 0, 'x', diffNames},
		{diffAlive2 | mutOverwrite | mutReframe, 4, 0x60, 0, 1, 14, 0xff, diffPort2 | mutReframe | mutTruncate, 4, 1},
	}
	for _, b := range frameSeeds() {
		seeds = append(seeds, diffScript(rawStep(b)))
	}
	return seeds
}

// ---------------------------------------------------------------------------
// The daemons.

// diffPair is the stock and our daemon of one fuzz process.
type diffPair struct {
	stock  *stockDaemon
	srv    *server.Server
	addrs  [2]string
	port   int  // stock's port, our configured port
	broken bool // a check failed: the next input gets fresh daemons
}

type stockDaemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

var (
	diffMu   sync.Mutex
	diffOnce = new(sync.Once)
	diffFix  *diffPair
	diffErr  error
)

// getDiffPair starts both daemons once per process, and again after a
// failed check.
func getDiffPair(t *testing.T, bin string) *diffPair {
	t.Helper()
	diffMu.Lock()
	defer diffMu.Unlock()
	if diffFix != nil && diffFix.broken {
		diffFix.stop()
		diffOnce, diffFix, diffErr = new(sync.Once), nil, nil
	}
	diffOnce.Do(func() { diffFix, diffErr = startDiffPair(bin) })
	if diffErr != nil {
		t.Fatalf("starting the daemons: %v", diffErr)
	}
	return diffFix
}

// stopDifferentialDaemons stops the daemons at the end of the process
// (TestMain).
func stopDifferentialDaemons() {
	diffMu.Lock()
	defer diffMu.Unlock()
	if diffFix != nil {
		diffFix.stop()
		diffOnce, diffFix, diffErr = new(sync.Once), nil, nil
	}
}

func (p *diffPair) stop() {
	p.stock.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
}

func startDiffPair(bin string) (*diffPair, error) {
	st, port, err := startStock(bin)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		st.kill()
		return nil, err
	}
	srv := server.New(server.Config{Port: uint32(port), Relaxed: true, MaxRemembered: registry.DebugMaxRemembered, ProbeGrace: -1})
	go srv.Serve(ln)
	return &diffPair{
		stock: st, srv: srv, port: port,
		addrs: [2]string{"127.0.0.1:" + strconv.Itoa(port), ln.Addr().String()},
	}, nil
}

// startStock runs the stock epmd on a free loopback port and waits until it
// accepts. It tries another port when the daemon exits at once (the port
// was taken meanwhile; stock then exits).
func startStock(bin string) (*stockDaemon, int, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ERL_EPMD_") {
			env = append(env, kv)
		}
	}
	var lastErr error
	for range 3 {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, 0, err
		}
		cmd := exec.Command(bin, "-port", strconv.Itoa(port), "-address", "127.0.0.1", "-relaxed_command_check", "-d")
		cmd.Env = env
		// The daemon dies with the thread that started it, should this
		// process die without running its cleanup. That thread is locked
		// to a goroutine that lives as long as the daemon.
		cmd.SysProcAttr = dieWithParent()
		st := &stockDaemon{cmd: cmd, exited: make(chan struct{})}
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			cmd.Wait()
			close(st.exited)
		}()
		if err := <-started; err != nil {
			return nil, 0, err
		}
		if lastErr = st.waitReady(port); lastErr == nil {
			return st, port, nil
		}
		st.kill()
	}
	return nil, 0, lastErr
}

func (st *stockDaemon) waitReady(port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-st.exited:
			return fmt.Errorf("stock epmd on port %d exited at once: %v", port, st.cmd.ProcessState)
		default:
		}
		if c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond); err == nil {
			c.Close()
			// A daemon that found the port taken exits at once: make
			// sure the one answering is ours.
			time.Sleep(20 * time.Millisecond)
			select {
			case <-st.exited:
				return fmt.Errorf("stock epmd on port %d exited at once: %v", port, st.cmd.ProcessState)
			default:
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("stock epmd on port %d not accepting after 10 s", port)
}

func (st *stockDaemon) kill() {
	st.cmd.Process.Kill()
	<-st.exited
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1 and ::1 a
// moment ago (stock listens on both), like testenv.FreePort.
func freeLoopbackPort() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ln6, err := net.Listen("tcp6", "[::1]:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln6.Close()
		return port, nil
	}
	return 0, errors.New("no port free on both 127.0.0.1 and ::1")
}

// ---------------------------------------------------------------------------
// Connections.

// diffConn is one connection of an input, on both daemons.
type diffConn struct {
	data  []byte
	model outcome // stock's whole-buffer parse of data
	// readNow: a request runs, so read at once until the close or, if
	// stopAtAlive2, until an ALIVE2 reply is complete (the socket stays
	// open). Otherwise the frame is incomplete: nothing comes until the
	// end.
	readNow, stopAtAlive2 bool
	sides                 [2]sideConn
}

// sideConn is one connection to one daemon.
type sideConn struct {
	c      net.Conn
	reply  []byte
	closed bool // the daemon closed it (EOF or reset)
	reset  bool
	byUs   bool  // the script closed it
	err    error // anything but EOF, reset and timeout
}

// plan works out, from stock's read loop, how to read the reply.
func (dc *diffConn) plan() {
	var fr wire.Framer
	dc.model = feedFramer(&fr, dc.data, nil)
	switch {
	case dc.model.frame != nil:
		dc.readNow = true
		// Bytes beyond the frame (only after a 3057-byte frame) end a
		// kept socket: then read until the close.
		_, err := wire.DecodeRequest(dc.model.frame)
		dc.stopAtAlive2 = err == nil && dc.model.frame[0] == byte(wire.TagAlive2Req) && dc.model.consumed == len(dc.data)
	case dc.model.err != nil:
		dc.readNow = true
	}
}

// send opens the connection to one daemon, writes the bytes and reads what
// must come at once.
func (p *diffPair) send(t *testing.T, side int, dc *diffConn) {
	t.Helper()
	sc := &dc.sides[side]
	c, err := net.DialTimeout("tcp4", p.addrs[side], diffReplyTimeout)
	if err != nil {
		t.Fatalf("%s: dial: %v", sideNames[side], err)
	}
	sc.c = c
	c.SetWriteDeadline(time.Now().Add(diffReplyTimeout))
	if len(dc.data) > 0 {
		if _, err := c.Write(dc.data); err != nil && !isReset(err) {
			t.Fatalf("%s: write: %v", sideNames[side], err)
		}
	}
	if dc.readNow {
		sc.read(time.Now().Add(diffReplyTimeout), dc.stopAtAlive2)
	}
}

// read reads until the daemon closes, the deadline passes, or (stopAtAlive2)
// the reply is a whole ALIVE2 reply.
func (sc *sideConn) read(deadline time.Time, stopAtAlive2 bool) {
	sc.c.SetReadDeadline(deadline)
	buf := make([]byte, 4096)
	for {
		if stopAtAlive2 && len(sc.reply) > 0 && len(sc.reply) == wire.Alive2ReplyLen(sc.reply[0]) {
			return
		}
		n, err := sc.c.Read(buf)
		sc.reply = append(sc.reply, buf[:n]...)
		var ne net.Error
		switch {
		case err == nil:
		case err == io.EOF:
			sc.closed = true
			return
		case isReset(err):
			sc.closed, sc.reset = true, true
			return
		case errors.As(err, &ne) && ne.Timeout():
			return
		default:
			sc.err = err
			return
		}
	}
}

// awaitOpen gives every connection still open on either daemon one common
// window to send more or close.
func awaitOpen(conns []*diffConn, window time.Duration) {
	deadline := time.Now().Add(window)
	var wg sync.WaitGroup
	for _, dc := range conns {
		for i := range dc.sides {
			sc := &dc.sides[i]
			if sc.closed || sc.byUs || sc.err != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc.read(deadline, false)
			}()
		}
	}
	wg.Wait()
}

// registered reports whether the daemon registered a node on this
// connection and still holds it: a success ALIVE2 reply, nothing after it,
// socket open.
func (sc *sideConn) registered() bool {
	return !sc.closed && !sc.byUs && sc.err == nil && len(sc.reply) >= 2 &&
		len(sc.reply) == wire.Alive2ReplyLen(sc.reply[0]) && sc.reply[1] == 0
}

// closeMidway is a close step: after the open window (so that this
// connection's state is settled, as at the end), close it and, if it held a
// registration, wait until the daemon has dropped it.
func (p *diffPair) closeMidway(t *testing.T, side int, dc *diffConn) {
	t.Helper()
	sc := &dc.sides[side]
	if sc.byUs {
		return
	}
	if !sc.closed && sc.err == nil {
		sc.read(time.Now().Add(diffOpenWindow), false)
	}
	p.closeRegistered(t, side, dc)
}

// closeRegistered closes the connection; if it held a registration, it
// waits until that daemon's NAMES reply has changed (the node is gone), so
// that unregistrations happen in the same order on both daemons.
func (p *diffPair) closeRegistered(t *testing.T, side int, dc *diffConn) {
	t.Helper()
	sc := &dc.sides[side]
	if sc.byUs {
		return
	}
	var before []byte
	reg := sc.registered()
	if reg {
		var err error
		if before, err = fetchNames(p.addrs[side]); err != nil {
			t.Fatalf("%s: NAMES: %v", sideNames[side], err)
		}
	}
	sc.c.Close()
	sc.byUs = true
	if !reg {
		return
	}
	deadline := time.Now().Add(diffSettle)
	for {
		now, err := fetchNames(p.addrs[side])
		if err != nil {
			t.Fatalf("%s: NAMES: %v", sideNames[side], err)
		}
		if !bytes.Equal(now, before) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the registration of a connection (sent %s) was not dropped %v after its close; NAMES %s",
				sideNames[side], quoteLong(dc.data), diffSettle, quoteLong(now))
		}
		time.Sleep(time.Millisecond)
	}
}

// fetchNames returns a NAMES reply.
func fetchNames(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp4", addr, diffReplyTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(diffReplyTimeout))
	if _, err := c.Write(frame([]byte("n"))); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// checkHealthy checks, after every connection was closed, that both
// daemons hold no registration, that ours has no connection left, and that
// stock still runs.
func (p *diffPair) checkHealthy(t *testing.T) {
	t.Helper()
	header := []byte{byte(p.port >> 24), byte(p.port >> 16), byte(p.port >> 8), byte(p.port)}
	deadline := time.Now().Add(diffSettle)
	for side := range p.addrs {
		for {
			got, err := fetchNames(p.addrs[side])
			if err == nil && bytes.Equal(got, header) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health check: %s answers NAMES with %s (err %v), want the header %q alone",
					sideNames[side], quoteLong(got), err, header)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for p.srv.NumConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("health check: ours still has %d connections %v after the input", p.srv.NumConns(), diffSettle)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-p.srv.Done():
		t.Fatal("health check: ours is shutting down")
	case <-p.stock.exited:
		t.Fatalf("health check: stock epmd exited: %v", p.stock.cmd.ProcessState)
	default:
	}
}

// ---------------------------------------------------------------------------
// Comparison.

// compare returns "" when the two daemons' answers agree by the rules of
// FuzzDifferential, else what differs; and the open finding that explains
// an otherwise unexplained difference, if one does.
func (dc *diffConn) compare() (diff, finding string) {
	st, ou := &dc.sides[sideStock], &dc.sides[sideOurs]
	if st.err != nil || ou.err != nil {
		return fmt.Sprintf("read error: stock %v, ours %v", st.err, ou.err), ""
	}
	if name, ok := lookup255(dc.model.frame); ok {
		// differences.md #2: stock cannot look up a 255-character name.
		if len(st.reply) != 0 || !st.closed {
			return fmt.Sprintf("PORT_PLEASE2 of a 255-character name: stock answered %s (%s), want its silent close",
				quoteLong(st.reply), openClosed(st.closed)), ""
		}
		var m wire.Port2Resp
		err := m.UnmarshalBinary(ou.reply)
		if !ou.closed || err != nil || (m.Result == 0 && m.Node.Name != name) {
			return fmt.Sprintf("PORT_PLEASE2 of a 255-character name: ours answered %s (%s, %v), want a PORT2_RESP for it",
				quoteLong(ou.reply), openClosed(ou.closed), err), ""
		}
		return "", ""
	}
	if st.closed != ou.closed {
		return fmt.Sprintf("stock %s the connection, ours %s", openClosed(st.closed), openClosed(ou.closed)), ""
	}
	if !sameReply(st.reply, ou.reply) {
		return fmt.Sprintf("replies differ:\n\tstock %s\n\tours  %s", quoteLong(st.reply), quoteLong(ou.reply)), ""
	}
	if st.reset != ou.reset {
		return fmt.Sprintf("stock ended the connection with %s, ours with %s", endName(st.reset), endName(ou.reset)), ""
	}
	return "", ""
}

// Open findings: differences from stock that no documented rule explains,
// reported but not yet fixed (docs/fuzzing.md, "Findings"). compare would
// excuse each only in the exact form it was found in, so that the fuzzer
// can look for other things meanwhile. There are none open now: both
// findings so far (bytes on a kept socket ending it with a reset, and the
// 3060-byte edge of that fix) are fixed and pinned by regression tests.

// keptSocketLeftover returns how many bytes arrive on a socket after an
// ALIVE2 that keeps it: those behind a 3057-byte ALIVE2 frame in the same
// write (stock's first read stops at the frame). 0 when the connection's
// request is not such an ALIVE2.
func (dc *diffConn) keptSocketLeftover() int {
	if dc.model.frame == nil {
		return 0
	}
	if req, err := wire.DecodeRequest(dc.model.frame); err != nil || req.Tag() != wire.TagAlive2Req {
		return 0
	}
	return len(dc.data) - dc.model.consumed
}

func endName(reset bool) string {
	if reset {
		return "a reset"
	}
	return "EOF"
}

func openClosed(closed bool) string {
	if closed {
		return "closed"
	}
	return "kept open"
}

// lookup255 reports whether body is a PORT_PLEASE2_REQ that both daemons
// decode, for a name of exactly 255 characters.
func lookup255(body []byte) (string, bool) {
	if body == nil {
		return "", false
	}
	req, err := wire.DecodeRequest(body)
	if err != nil {
		return "", false
	}
	p, ok := req.(*wire.PortPlease2Req)
	if !ok {
		return "", false
	}
	return p.Name, wire.NameChars(p.Name) == wire.MaxNameChars
}

// sameReply compares two replies: exactly, except for ALIVE2 creations and
// DUMP descriptors.
func sameReply(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	// ALIVE2: same tag and result; a success's creation by range.
	if len(a) > 0 && len(a) == len(b) && a[0] == b[0] {
		if n := wire.Alive2ReplyLen(a[0]); n > 0 && len(a) >= n && bytes.Equal(a[n:], b[n:]) && a[1] == b[1] {
			ra, ca, erra := wire.DecodeAlive2Reply(a[:n])
			_, cb, errb := wire.DecodeAlive2Reply(b[:n])
			if erra != nil || errb != nil || ra != 0 {
				return false
			}
			if n == 6 {
				return ca >= 4 && cb >= 4
			}
			return ca >= 1 && ca <= 3 && cb >= 1 && cb <= 3
		}
	}
	// DUMP: equal once every fd is masked.
	var da, db wire.DumpResp
	if da.UnmarshalBinary(a) != nil || db.UnmarshalBinary(b) != nil {
		return false
	}
	ma, _ := maskFds(da).AppendBinary(nil)
	mb, _ := maskFds(db).AppendBinary(nil)
	return bytes.Equal(ma, mb)
}

// maskFds returns m with every fd set to 0.
func maskFds(m wire.DumpResp) *wire.DumpResp {
	mask := func(es []wire.DumpEntry) []wire.DumpEntry {
		es = slices.Clone(es)
		for i := range es {
			es[i].Fd = 0
		}
		return es
	}
	m.Active, m.Old = mask(m.Active), mask(m.Old)
	return &m
}

// quoteLong quotes b in ASCII, cut after 400 bytes.
func quoteLong(b []byte) string {
	if len(b) > 400 {
		return strconv.QuoteToASCII(string(b[:400])) + fmt.Sprintf("...(%d bytes)", len(b))
	}
	return strconv.QuoteToASCII(string(b))
}

// modelString says what stock's read loop makes of the bytes.
func (dc *diffConn) modelString() string {
	switch o := dc.model; {
	case o.frame != nil:
		return "runs " + quoteLong(o.frame)
	case o.err != nil:
		return "refused: " + o.err.Error()
	}
	return "incomplete"
}

// transcript describes an input and both daemons' answers, for failures.
func transcript(steps []diffStep, conns []*diffConn) string {
	var b strings.Builder
	k := 0
	for _, st := range steps {
		if st.close >= 0 {
			fmt.Fprintf(&b, "  close connection %d\n", st.close)
			continue
		}
		dc := conns[k]
		fmt.Fprintf(&b, "  connection %d: sent %s (stock's read loop: %s)\n", k, quoteLong(dc.data), dc.modelString())
		for i, sc := range dc.sides {
			fmt.Fprintf(&b, "    %-5s %s, %s", sideNames[i], quoteLong(sc.reply), openClosed(sc.closed))
			if sc.reset {
				b.WriteString(" (reset)")
			}
			b.WriteByte('\n')
		}
		k++
	}
	return b.String()
}
