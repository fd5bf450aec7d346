//go:build linux

package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// malformedKinds are the kinds of bad input TestMalformedInputNeverHurtsOthers
// sends, one connection each.
var malformedKinds = [...]string{
	"random bytes", "length 0", "length >= 3058", "short frame then close",
	"truncated ALIVE2", "ALIVE2 with bad lengths", "request + stray bytes in one write",
	"random tag and body", "stray bytes after registering", "refused ALIVE2 then bytes",
	"garbage dribbled",
}

// badInput is one run of TestMalformedInputNeverHurtsOthers against addr.
type badInput struct {
	addr    string
	kinds   [len(malformedKinds)]atomic.Int64
	victims sync.Map // names registered then hit with stray bytes
	churnOK atomic.Int64
	churnKO atomic.Int64
	firstKO atomic.Value
}

// malformed opens one connection and sends bad input of kind k.
func (b *badInput) malformed(rng *rand.Rand, k int, id string) {
	b.kinds[k].Add(1)
	c, err := net.DialTimeout("tcp", b.addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	junk := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	alive2, _ := wire.EncodeRequest(&wire.Alive2Req{Node: node("mal"+id, 1)})
	var out []byte
	switch k {
	case 0:
		out = junk(1 + rng.IntN(64))
	case 1:
		out = []byte{0, 0}
	case 2:
		out = append([]byte{0x0b, 0xf2 + byte(rng.IntN(14))}, junk(rng.IntN(100))...)
	case 3:
		n := 2 + rng.IntN(200)
		out = append([]byte{byte(n >> 8), byte(n)}, junk(rng.IntN(n))...)
	case 4:
		out = alive2[:2+rng.IntN(len(alive2)-2)]
	case 5:
		bad := append([]byte(nil), alive2...)
		bad[12] = byte(rng.IntN(256)) // Nlen
		bad[len(bad)-1] = byte(1 + rng.IntN(255))
		out = bad
	case 6:
		names, _ := wire.EncodeRequest(&wire.NamesReq{})
		out = append(names, junk(1+rng.IntN(8))...)
	case 7:
		body := append([]byte{byte(rng.Uint32())}, junk(rng.IntN(40))...)
		out = wire.AppendRawFrame(nil, uint16(len(body)), body)
	case 8:
		c.Close()
		name := "victim" + id
		r, err := rawRegister(b.addr, node(name, 2), 5*time.Second)
		if err != nil {
			return
		}
		defer r.Close()
		b.victims.Store(name, true)
		r.Write(junk(1 + rng.IntN(8)))
		r.SetReadDeadline(time.Now().Add(time.Second))
		r.Read(make([]byte, 16)) // until the daemon closes
		return
	case 9:
		ref, _ := wire.EncodeRequest(&wire.Alive2Req{Node: node("\xff\xfe", 1)})
		out = append(ref, junk(1+rng.IntN(8))...)
		c.Write(ref)
		c.SetReadDeadline(time.Now().Add(time.Second))
		c.Read(make([]byte, 6))
		out = out[len(ref):]
	case 10:
		for _, x := range junk(2 + rng.IntN(6)) {
			c.Write([]byte{x})
			time.Sleep(time.Millisecond)
		}
	}
	c.Write(out)
	// Wait briefly for the daemon's answer or close, then go.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	c.Read(make([]byte, 64))
	if rng.IntN(2) == 0 {
		reset(c.(*net.TCPConn))
	}
}

// churn registers, looks up and closes unique names until stop.
func (b *badInput) churn(stop <-chan struct{}) {
	cl := &client.Client{Addr: b.addr, Timeout: 10 * time.Second}
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name := "churn" + strconv.Itoa(i)
		r, err := cl.Register(ctx, node(name, uint16(20000+i%1000)))
		if err == nil {
			var n wire.Node
			n, err = cl.Lookup(ctx, name)
			if err == nil && n.Port != uint16(20000+i%1000) {
				err = fmt.Errorf("looked up port %d", n.Port)
			}
			r.Close()
		}
		if err != nil {
			b.churnKO.Add(1)
			b.firstKO.CompareAndSwap(nil, name+": "+err.Error())
		} else {
			b.churnOK.Add(1)
		}
	}
}

// run sends total malformed connections from 8 goroutines while churn and
// look-ups of stable7 go on, and returns the look-ups' figures.
func (b *badInput) run(seed uint64, total int) (loadResult, time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); b.churn(ctx.Done()) }()
	var lookups loadResult
	go func() {
		defer bg.Done()
		lookups = lookupsUntil(ctx, b.addr, "stable7", 3007, 2, 1<<30, time.Hour, 5*time.Second, time.Millisecond)
	}()
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := w; i < total; i += workers {
				b.malformed(rng, rng.IntN(len(malformedKinds)), strconv.Itoa(w)+"-"+strconv.Itoa(i))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	bg.Wait()
	return lookups, elapsed
}

// TestMalformedInputNeverHurtsOthers: 3000 connections (1000 under -short)
// with bad input
// (garbage, bad lengths, truncated or inconsistent ALIVE2s, pipelined
// bytes, stray bytes after a registration) interleaved with 20 stable
// registrations, a register/look-up/close churn and look-ups of a stable
// node. Bad input affects only its own connection: every look-up and churn
// cycle succeeds, the stable registrations are intact, the victims of
// stray bytes are unregistered, and the daemon keeps serving.
func TestMalformedInputNeverHurtsOthers(t *testing.T) {
	total := 3000
	if testing.Short() {
		total = 1000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) {
			var addr string
			var srv *server.Server
			if kind == gopmd {
				d := startServer(t, server.Config{Now: time.Now, PacketTimeout: time.Second})
				addr, srv = d.addr(), d.srv
			} else {
				addr = startDaemon(t, stock, testenv.StockEpmd(t), nil, "-packet_timeout", "1").addr()
			}
			want := map[string]uint16{}
			for i := 0; i < 20; i++ {
				name := "stable" + strconv.Itoa(i)
				c, err := rawRegister(addr, node(name, uint16(3000+i)), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				want[name] = uint16(3000 + i)
			}
			b := &badInput{addr: addr}
			lookups, elapsed := b.run(seed, total)
			var victims []string
			b.victims.Range(func(k, _ any) bool { victims = append(victims, k.(string)); return true })
			var got map[string]uint16
			intact := settle(5*time.Second, func() bool {
				var err error
				got, err = namesOf(addr)
				return err == nil && diffNames(want, got) == ""
			})
			var kinds []string
			for k := range malformedKinds {
				kinds = append(kinds, fmt.Sprintf("%s %d", malformedKinds[k], b.kinds[k].Load()))
			}
			first, _ := b.firstKO.Load().(string)
			figure(t, "badinput/"+string(kind), "%d malformed connections in %.1f s (%v); stable node look-ups meanwhile: %s; churn cycles %d ok, %d failed %s; registry intact: %v %s",
				total, elapsed.Seconds(), kinds, lookups, b.churnOK.Load(), b.churnKO.Load(), first, intact, diffNames(want, got))
			if kind != gopmd {
				return
			}
			if lookups.failed > 0 || b.churnKO.Load() > 0 || !intact {
				t.Errorf("bad input hurt others: look-ups %s; churn failures %d (%s); registry %s",
					lookups, b.churnKO.Load(), first, diffNames(want, got))
			}
			live, _ := srv.Snapshot()
			snap := map[string]uint16{}
			for _, e := range live {
				snap[e.Node.Name] = e.Node.Port
			}
			if d := diffNames(want, snap); d != "" {
				t.Errorf("registry: %s (%d stray-byte victims)", d, len(victims))
			}
			if !settle(5*time.Second, func() bool { return srv.NumConns() == len(want) }) {
				t.Errorf("%d connections open, want the %d stable ones", srv.NumConns(), len(want))
			}
		})
	}
}
