//go:build linux

package server_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// TestResetBeforeAlive2Reply: a client that sends ALIVE2 and resets the
// connection (SO_LINGER 0, close) before reading the reply must leave no
// registration behind (otp PR #923: zombie registrations).
func TestResetBeforeAlive2Reply(t *testing.T) {
	const n = 500
	run := func(addr string) (zombies int) {
		for i := 0; i < n; i++ {
			frame, _ := wire.EncodeRequest(&wire.Alive2Req{Node: node("rst"+strconv.Itoa(i), uint16(1000+i))})
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c := nc.(*net.TCPConn)
			c.Write(frame)
			switch i % 3 { // vary where the reset lands
			case 1:
				runtime.Gosched()
			case 2:
				time.Sleep(time.Duration(i%7) * 50 * time.Microsecond)
			}
			reset(c)
		}
		var names map[string]uint16
		settle(5*time.Second, func() bool {
			var err error
			names, err = namesOf(addr)
			return err == nil && len(names) == 0
		})
		return len(names)
	}

	d := startServer(t, server.Config{Now: time.Now})
	z := run(d.addr())
	figure(t, "zombies/gopmd", "%d of %d registrations left behind by ALIVE2 + reset", z, n)
	if z != 0 {
		t.Errorf("gopmd: %d zombie registrations", z)
	}
	if live, _ := d.srv.Snapshot(); len(live) != 0 {
		t.Errorf("registry not empty: %d live", len(live))
	}
	if !settle(5*time.Second, func() bool { return d.srv.NumConns() == 0 }) {
		t.Errorf("%d connections still open", d.srv.NumConns())
	}

	p := startDaemon(t, stock, testenv.StockEpmd(t), nil)
	figure(t, "zombies/stock", "%d of %d registrations left behind by ALIVE2 + reset", run(p.addr()), n)
}

// holder is one registration the chaos test holds.
type holder struct {
	name string
	port uint16
	reg  *client.Registration // through the Go client
	raw  *net.TCPConn         // raw ALIVE2 connection
	kid  *helperReg           // a child process
}

func (h *holder) close() {
	switch {
	case h.reg != nil:
		h.reg.Close()
	case h.raw != nil:
		h.raw.Close()
	case h.kid != nil:
		h.kid.kill() // SIGKILL: the kernel closes its socket
	}
}

// chaos is a run of TestChaosRegistryMatchesLiveConnections.
type chaos struct {
	addr   string
	strict bool // ours: any inconsistency is an error; stock: a figure

	port  atomic.Uint32
	kids  atomic.Int32
	mu    sync.Mutex
	ops   map[string]int
	fails map[string]int    // inconsistencies by kind
	first map[string]string // first message of each kind
	held  [][]*holder       // per worker, at the end
}

func (c *chaos) count(op string) {
	c.mu.Lock()
	c.ops[op]++
	c.mu.Unlock()
}

func (c *chaos) fail(kind, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fails[kind]++
	if _, ok := c.first[kind]; !ok {
		c.first[kind] = fmt.Sprintf(format, args...)
	}
}

func (c *chaos) nextPort() uint16 { return uint16(1024 + c.port.Add(1)%60000) }

const (
	chaosWorkers = 16
	chaosOps     = 250 // per worker
	chaosMaxHeld = 6   // per worker
	chaosMaxKids = 12  // child processes killed or kept
)

// worker runs one goroutine's random operations.
func (c *chaos) worker(t *testing.T, w int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	cl := &client.Client{Addr: c.addr, Timeout: 10 * time.Second}
	ctx := context.Background()
	var held []*holder
	own := func() string { // a name of this worker's own pool not held now
		for {
			name := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(rng.IntN(16))
			if !slices.ContainsFunc(held, func(h *holder) bool { return h.name == name }) {
				return name
			}
		}
	}
	register := func(name string, raw bool) (*holder, error) {
		h := &holder{name: name, port: c.nextPort()}
		var err error
		if raw {
			h.raw, err = rawRegister(c.addr, node(name, h.port), 10*time.Second)
		} else {
			h.reg, err = cl.Register(ctx, node(name, h.port))
		}
		return h, err
	}
	take := func(pred func(*holder) bool) *holder {
		var idx []int
		for i, h := range held {
			if pred(h) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			return nil
		}
		i := idx[rng.IntN(len(idx))]
		h := held[i]
		held = slices.Delete(held, i, i+1)
		return h
	}
	any := func(*holder) bool { return true }
	// Only names of our own pool: another worker may take a shared name
	// between the close and the new registration.
	restartable := func(h *holder) bool { return h.kid == nil && !strings.HasPrefix(h.name, "shared") }
	isRaw := func(h *holder) bool { return h.raw != nil }

	for i := 0; i < chaosOps; i++ {
		r := rng.IntN(100)
		if len(held) >= chaosMaxHeld && r < 35 {
			r = 40 // full: close something
		}
		switch {
		case r < 22: // register a name of our own pool: must succeed
			c.count("register")
			name := own()
			h, err := register(name, rng.IntN(2) == 0)
			if err != nil {
				c.fail("own name refused", "register %s: %v", name, err)
				continue
			}
			held = append(held, h)
		case r < 27: // register a shared name: may be a live duplicate
			c.count("register shared")
			name := "shared" + strconv.Itoa(rng.IntN(6))
			if slices.ContainsFunc(held, func(h *holder) bool { return h.name == name }) {
				continue
			}
			if h, err := register(name, rng.IntN(2) == 0); err == nil {
				held = append(held, h)
			}
		case r < 29: // a child process registers; killed now or later
			if c.kids.Add(1) > chaosMaxKids {
				continue
			}
			c.count("child process")
			name := "kid" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
			h := &holder{name: name, port: c.nextPort()}
			kid, err := startHelperReg(t, nil, c.addr, name, h.port)
			if err != nil {
				c.fail("child registration failed", "%v", err)
				continue
			}
			h.kid = kid
			if rng.IntN(2) == 0 {
				kid.kill()
				c.count("child killed at once")
				continue
			}
			held = append(held, h)
		case r < 40: // close one (FIN; SIGKILL for a child)
			if h := take(any); h != nil {
				c.count("close")
				h.close()
			}
		case r < 48: // reset one (RST)
			if h := take(isRaw); h != nil {
				c.count("reset")
				reset(h.raw)
			}
		case r < 56: // restart: close and register the same name at once
			h := take(restartable)
			if h == nil {
				continue
			}
			c.count("restart")
			if h.raw != nil && rng.IntN(2) == 0 {
				reset(h.raw)
			} else {
				h.close()
			}
			h2, err := register(h.name, rng.IntN(2) == 0)
			if err != nil {
				c.fail("restart refused", "re-register %s at once: %v", h.name, err)
				continue
			}
			held = append(held, h2)
		case r < 62: // ALIVE2 then reset before reading the reply
			c.count("ALIVE2 + reset")
			frame, _ := wire.EncodeRequest(&wire.Alive2Req{Node: node("rst"+strconv.Itoa(w)+"-"+strconv.Itoa(i), 1)})
			if nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second); err == nil {
				nc.Write(frame)
				reset(nc.(*net.TCPConn))
			}
		case r < 66: // half an ALIVE2, then close
			c.count("partial ALIVE2")
			frame, _ := wire.EncodeRequest(&wire.Alive2Req{Node: node("part"+strconv.Itoa(w), 1)})
			if nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second); err == nil {
				nc.Write(frame[:1+rng.IntN(len(frame)-1)])
				if rng.IntN(2) == 0 {
					reset(nc.(*net.TCPConn))
				} else {
					nc.Close()
				}
			}
		case r < 71: // stray bytes on a registration: the daemon drops it
			if h := take(isRaw); h != nil {
				c.count("stray bytes")
				h.raw.Write([]byte("junk")[:1+rng.IntN(4)])
				h.raw.Close()
			}
		case r < 92: // look up a name we hold
			if len(held) == 0 {
				continue
			}
			c.count("lookup")
			h := held[rng.IntN(len(held))]
			n, err := cl.Lookup(ctx, h.name)
			if err != nil || n.Port != h.port {
				c.fail("lookup of a held name", "lookup %s: port %d err %v, want port %d", h.name, n.Port, err, h.port)
			}
		default: // NAMES lists every name we hold
			c.count("names")
			names, err := namesOf(c.addr)
			if err != nil {
				c.fail("names", "NAMES: %v", err)
				continue
			}
			for _, h := range held {
				if names[h.name] != h.port {
					c.fail("NAMES misses a held name", "NAMES: %s has port %d, want %d", h.name, names[h.name], h.port)
				}
			}
		}
	}
	c.mu.Lock()
	c.held[w] = held
	c.mu.Unlock()
}

// run runs the workers and returns the registrations they hold at the end.
func (c *chaos) run(t *testing.T, seed uint64) map[string]uint16 {
	c.ops, c.fails, c.first = map[string]int{}, map[string]int{}, map[string]string{}
	c.held = make([][]*holder, chaosWorkers)
	var wg sync.WaitGroup
	for w := 0; w < chaosWorkers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.worker(t, w, seed) }()
	}
	wg.Wait()
	want := map[string]uint16{}
	for _, hs := range c.held {
		for _, h := range hs {
			want[h.name] = h.port
		}
	}
	return want
}

func (c *chaos) closeAll() {
	for _, hs := range c.held {
		for _, h := range hs {
			h.close()
		}
	}
}

func (c *chaos) summary() string {
	total := 0
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(c.ops)) {
		total += c.ops[k]
		kinds = append(kinds, fmt.Sprintf("%s %d", k, c.ops[k]))
	}
	s := fmt.Sprintf("%d operations (%s)", total, strings.Join(kinds, ", "))
	if len(c.fails) == 0 {
		return s + ", no inconsistency"
	}
	var fails []string
	for _, k := range slices.Sorted(maps.Keys(c.fails)) {
		fails = append(fails, fmt.Sprintf("%s %d (first: %s)", k, c.fails[k], c.first[k]))
	}
	return s + "; inconsistencies: " + strings.Join(fails, "; ")
}

// diffNames describes how got differs from want.
func diffNames(want, got map[string]uint16) string {
	var d []string
	for n, p := range want {
		if gp, ok := got[n]; !ok {
			d = append(d, "missing "+n)
		} else if gp != p {
			d = append(d, fmt.Sprintf("%s port %d, want %d", n, gp, p))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			d = append(d, "zombie "+n)
		}
	}
	slices.Sort(d)
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("... %d more", len(d)-10))
	}
	return strings.Join(d, ", ")
}

// TestChaosRegistryMatchesLiveConnections: 16 goroutines draw 4000 random
// operations (about 3400 do something; the rest find nothing to act on): register (Go client and raw), close, reset, restart a name at
// once, ALIVE2 then reset, partial ALIVE2, stray bytes on a registration,
// child processes registering then SIGKILLed, look-ups and NAMES of the
// names they hold. At the end the registry is exactly the set of
// registrations still held, with their ports; once they are closed the
// daemon's goroutines, descriptors and connections return to the
// baseline. The same client side runs against the stock daemon.
func TestChaosRegistryMatchesLiveConnections(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	d := startServer(t, server.Config{Now: time.Now})
	// Warm up first, so that anything the daemon starts once, on first
	// use, is part of the baseline.
	if r, err := rawRegister(d.addr(), node("warmup", 1), 5*time.Second); err != nil {
		t.Fatal(err)
	} else {
		r.Close()
	}
	settle(5*time.Second, func() bool { return d.srv.NumConns() == 0 })
	runtime.GC()
	baseG, baseFd := runtime.NumGoroutine(), openFds("self")
	c := &chaos{addr: d.addr(), strict: true}
	start := time.Now()
	want := c.run(t, seed)
	elapsed := time.Since(start)
	var got map[string]uint16
	consistent := settle(5*time.Second, func() bool {
		var err error
		got, err = namesOf(c.addr)
		return err == nil && diffNames(want, got) == ""
	})
	live, _ := d.srv.Snapshot()
	snap := map[string]uint16{}
	for _, e := range live {
		snap[e.Node.Name] = e.Node.Port
	}
	// Connections of finished operations may still be closing.
	conns := d.srv.NumConns()
	settle(5*time.Second, func() bool { conns = d.srv.NumConns(); return conns == len(want) })
	figure(t, "chaos/gopmd", "%s in %.1f s; at the end %d held, NAMES == held: %v, snapshot == held: %v, connections %d",
		c.summary(), elapsed.Seconds(), len(want), consistent, diffNames(want, snap) == "", conns)
	if len(c.fails) > 0 {
		t.Errorf("inconsistencies during the run: %s", c.summary())
	}
	if !consistent {
		t.Errorf("NAMES differs from the held registrations: %s", diffNames(want, got))
	}
	if diff := diffNames(want, snap); diff != "" {
		t.Errorf("registry differs from the held registrations: %s", diff)
	}
	if conns != len(want) {
		t.Errorf("%d connections open, want one per held registration (%d)", conns, len(want))
	}
	c.closeAll()
	if !settle(10*time.Second, func() bool {
		live, _ := d.srv.Snapshot()
		return len(live) == 0 && d.srv.NumConns() == 0
	}) {
		live, _ := d.srv.Snapshot()
		t.Errorf("after closing everything: %d registered, %d connections", len(live), d.srv.NumConns())
	}
	var g, fd int
	back := settle(10*time.Second, func() bool {
		runtime.GC()
		g, fd = runtime.NumGoroutine(), openFds("self")
		return g <= baseG && fd <= baseFd
	})
	figure(t, "chaos/gopmd-leaks", "goroutines %d -> %d, descriptors %d -> %d", baseG, g, baseFd, fd)
	if !back {
		t.Errorf("leak: goroutines %d (baseline %d), descriptors %d (baseline %d)", g, baseG, fd, baseFd)
	}

	p := startDaemon(t, stock, testenv.StockEpmd(t), nil)
	sc := &chaos{addr: p.addr()}
	start = time.Now()
	want = sc.run(t, seed)
	elapsed = time.Since(start)
	consistent = settle(5*time.Second, func() bool {
		var err error
		got, err = namesOf(sc.addr)
		return err == nil && diffNames(want, got) == ""
	})
	figure(t, "chaos/stock", "%s in %.1f s; at the end %d held, NAMES == held: %v %s",
		sc.summary(), elapsed.Seconds(), len(want), consistent, diffNames(want, got))
	sc.closeAll()
}
