//go:build linux

package server_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/wire"
)

// dribbleFrame is a request that takes 30 s to dribble at one byte per
// 100 ms: a PORT_PLEASE2 of a 298-byte name.
var dribbleFrame = wire.AppendRawFrame(nil, 299, append([]byte("z"), bytes.Repeat([]byte("d"), 298)...))

// dribble sends dribbleFrame one byte every 100 ms on a new connection to
// addr for at most limit, and returns how long the connection lasted
// before the daemon closed it, or 0 if it was still open at the limit.
func dribble(t *testing.T, addr string, limit time.Duration) time.Duration {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	var buf [64]byte
	for _, b := range dribbleFrame {
		if time.Since(start) > limit {
			return 0
		}
		if _, err := c.Write([]byte{b}); err != nil {
			return time.Since(start)
		}
		// Wait 100 ms for the daemon to close the connection.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf[:]); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return time.Since(start)
			}
		}
	}
	t.Fatal("the whole dribbled frame was sent")
	return 0
}

// TestDribblerCutAtPacketTimeout: a client sending one byte every 100 ms is
// cut at -packet_timeout (1 s here) counted from the start of its request
// (docs/differences.md #1). Stock OTP 25 refreshes the timeout with every
// byte and keeps the connection.
func TestDribblerCutAtPacketTimeout(t *testing.T) {
	const limit = 4 * time.Second
	p := startDaemon(t, gopmd, ourEpmd(t), nil, "-packet_timeout", "1")
	cut := dribble(t, p.addr(), limit)
	if cut == 0 {
		t.Errorf("gopmd: dribbler still connected after %v with -packet_timeout 1", limit)
	}
	figure(t, "dribble/gopmd", "-packet_timeout 1: dribbler cut after %.2f s", cut.Seconds())

	ps := startDaemon(t, stock, testenv.StockEpmd(t), nil, "-packet_timeout", "1")
	if cut := dribble(t, ps.addr(), limit); cut == 0 {
		figure(t, "dribble/stock", "-packet_timeout 1: dribbler still connected after %v", limit)
	} else {
		figure(t, "dribble/stock", "-packet_timeout 1: dribbler cut after %.2f s", cut.Seconds())
	}
}

// attack holds n dribbling connections to addr: every 100 ms each sends one
// more byte of dribbleFrame; a connection the daemon closes is replaced at
// its next turn.
type attack struct {
	addr    string
	stop    chan struct{}
	wg      sync.WaitGroup
	open    atomic.Int64 // connections currently open
	cuts    atomic.Int64 // connections the daemon closed
	dials   atomic.Int64
	failed  atomic.Int64 // dials that failed
	started time.Time
	once    sync.Once
}

func startAttack(addr string, n, groups int) *attack {
	a := &attack{addr: addr, stop: make(chan struct{}), started: time.Now()}
	for g := 0; g < groups; g++ {
		a.wg.Add(1)
		go a.group(n / groups)
	}
	return a
}

func (a *attack) group(n int) {
	defer a.wg.Done()
	type dribbler struct {
		c    net.Conn
		sent int
	}
	ds := make([]dribbler, n)
	defer func() {
		for _, d := range ds {
			if d.c != nil {
				d.c.Close()
				a.open.Add(-1)
			}
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for i := range ds {
			d := &ds[i]
			if d.c == nil {
				a.dials.Add(1)
				c, err := net.DialTimeout("tcp", a.addr, time.Second)
				if err != nil {
					a.failed.Add(1)
					continue
				}
				d.c, d.sent = c, 0
				a.open.Add(1)
			}
			d.c.SetWriteDeadline(time.Now().Add(time.Second))
			_, err := d.c.Write(dribbleFrame[d.sent%len(dribbleFrame) : d.sent%len(dribbleFrame)+1])
			d.sent++
			if err != nil {
				d.c.Close()
				d.c = nil
				a.open.Add(-1)
				a.cuts.Add(1)
			}
		}
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
	}
}

func (a *attack) end() {
	a.once.Do(func() { close(a.stop) })
	a.wg.Wait()
}

// TestDribblersDoNotBlockLookups: 2000 dribbling connections at once
// (replaced when cut) while other clients look a node up. With ours every
// look-up succeeds; the p99 with and without the attack are figures. Stock
// keeps every dribbler (its timeout is refreshed by each byte) and is
// capped at about 1019 connections, so there the attack itself locks
// clients out: also a figure.
func TestDribblersDoNotBlockLookups(t *testing.T) {
	skipShort(t, "two daemons under a 2000-connection dribble attack")
	const dribblers = 2000
	if !fdsAvailable(t, 2*dribblers+500) {
		return
	}
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) {
			p := startDaemon(t, kind, daemonPath(t, kind), nil, "-packet_timeout", "2")
			r, err := (&client.Client{Addr: p.addr(), Timeout: 5 * time.Second}).Register(context.Background(), node("target", 4711))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// Paced look-ups over several packet timeouts, so that
			// they meet the attackers' reconnections too.
			load := func(wall time.Duration) loadResult {
				return pacedLookups(p.addr(), "target", 4711, 4, 1<<30, wall, 10*time.Second, 5*time.Millisecond)
			}
			base := load(3 * time.Second)
			figure(t, "dribblers/"+string(kind)+"/baseline", "%s", base)

			a := startAttack(p.addr(), dribblers, 20)
			defer a.end()
			settle(10*time.Second, func() bool { return a.open.Load() >= dribblers })
			time.Sleep(500 * time.Millisecond)
			during := load(6 * time.Second)
			open, cuts, dials := a.open.Load(), a.cuts.Load(), a.dials.Load()
			a.end()
			figure(t, "dribblers/"+string(kind)+"/attack", "%s; attackers: %d connections open at the end, %d dials, %d cut by the daemon in %.1f s",
				during, open, dials, cuts, time.Since(a.started).Seconds())
			if kind == gopmd {
				if base.failed > 0 || during.failed > 0 || during.ok == 0 {
					t.Errorf("look-ups failed: baseline %s; under attack %s", base, during)
				}
				if cuts == 0 {
					t.Errorf("no dribbler was cut at the packet timeout")
				}
			}
			// The daemon serves again once the attack ends.
			if kind == gopmd || settle(10*time.Second, func() bool {
				_, err := (&client.Client{Addr: p.addr(), Timeout: time.Second}).Lookup(context.Background(), "target")
				return err == nil
			}) {
				after := lookupLoad(p.addr(), "target", 4711, 4, 200, 10*time.Second, 10*time.Second)
				if kind == gopmd && after.failed > 0 {
					t.Errorf("after the attack: %s", after)
				}
			}
		})
	}
}

// fdsAvailable reports whether this process may open n descriptors, and
// skips t with the reason if not.
func fdsAvailable(t *testing.T, n int) bool {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < uint64(n) {
		t.Skipf("needs %d file descriptors; the limit is %d (%v)", n, rl.Cur, err)
		return false
	}
	return true
}
