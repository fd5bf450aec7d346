package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

const testPrefix = "b1_7_"

// namesReply builds a NAMES reply with header port hdr and the lines given.
func namesReply(hdr uint16, lines ...string) []byte {
	b := []byte{0, 0, byte(hdr >> 8), byte(hdr)}
	for _, l := range lines {
		b = append(b, l...)
	}
	return b
}

func namesLine(name string, port int) string { return fmt.Sprintf("name %s at port %d\n", name, port) }

// runLines returns the lines of a run's nodes, newest first as epmd lists
// them, shuffled by rng when it is not nil.
func runLines(nodes int, rng *rand.Rand) []string {
	lines := make([]string, nodes)
	for i := range nodes {
		lines[nodes-1-i] = namesLine(nodeName(testPrefix, i), int(nodePort(i)))
	}
	if rng != nil {
		rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	}
	return lines
}

func TestNamesCheck(t *testing.T) {
	const nodes = 130 // spans three words of the bitmap
	good := runLines(nodes, nil)
	foreign := []string{namesLine("rabbit", 25672), namesLine("a b at port c", 1), namesLine("b1_71_0", 1024), namesLine("b1_7", 9)}
	with := func(extra ...string) []string { return append(append([]string(nil), good...), extra...) }
	replace := func(i int, l string) []string { s := with(); s[i] = l; return s }
	// good[0] is node nodes-1.
	last := nodeName(testPrefix, nodes-1)

	pass := []struct {
		name  string
		nodes int
		hdr   uint16
		reply []byte
	}{
		{"the run's nodes", nodes, 4369, namesReply(4369, good...)},
		{"shuffled", nodes, 4369, namesReply(4369, runLines(nodes, rand.New(rand.NewPCG(1, 2)))...)},
		{"with other nodes", nodes, 4369, namesReply(4369, append(with(foreign...), foreign...)...)},
		{"header unchecked", nodes, 0, namesReply(1, good...)},
		{"no nodes", 0, 4369, namesReply(4369)},
		{"no nodes, others", 0, 4369, namesReply(4369, foreign...)},
		{"port 0 and 65535", 1, 4369, namesReply(4369, namesLine(nodeName(testPrefix, 0), int(nodePort(0))), namesLine("x", 0), namesLine("y", 65535))},
	}
	for _, tt := range pass {
		t.Run("pass/"+tt.name, func(t *testing.T) {
			for _, full := range []bool{true, false} {
				c := newNamesCheck(testPrefix, tt.nodes, tt.hdr)
				c.full = full
				seen := c.newSeen()
				for range 3 {
					if err := c.check(tt.reply, seen); err != nil {
						t.Fatalf("full=%v: %v", full, err)
					}
				}
			}
		})
	}

	fail := []struct {
		name  string
		reply []byte
	}{
		{"short", []byte{0, 0, 1}},
		{"header", namesReply(4370, good...)},
		{"missing node", namesReply(4369, good[1:]...)},
		{"no lines", namesReply(4369)},
		{"only others", namesReply(4369, foreign...)},
		{"duplicate", namesReply(4369, replace(1, good[0])...)},
		{"duplicate added", namesReply(4369, with(good[5])...)},
		{"wrong port", namesReply(4369, replace(0, namesLine(last, int(nodePort(nodes-1))+1))...)},
		{"index out of range", namesReply(4369, with(namesLine(nodeName(testPrefix, nodes), int(nodePort(nodes))))...)},
		{"index with leading zero", namesReply(4369, replace(nodes-1, namesLine(testPrefix+"00", int(nodePort(0))))...)},
		{"index not a number", namesReply(4369, with(namesLine(testPrefix+"x", 1))...)},
		{"index empty", namesReply(4369, with(namesLine(testPrefix, 1))...)},
		{"port with leading zero", namesReply(4369, replace(0, "name "+last+" at port 0"+strconv.Itoa(int(nodePort(nodes-1)))+"\n")...)},
		{"port too large", namesReply(4369, with(namesLine("x", 65536))...)},
		{"port missing", namesReply(4369, with("name x at port \n")...)},
		{"port with sign", namesReply(4369, with("name x at port +1\n")...)},
		{"empty name", namesReply(4369, with("name  at port 1\n")...)},
		{"not a names line", namesReply(4369, with("hello\n")...)},
		{"empty line", namesReply(4369, with("\n")...)},
		{"unterminated", bytes.TrimSuffix(namesReply(4369, good...), []byte("\n"))},
		{"trailing bytes", append(namesReply(4369, good...), "name"...)},
		{"truncated mid-line", namesReply(4369, good...)[:100]},
	}
	for _, tt := range fail {
		t.Run("fail/"+tt.name, func(t *testing.T) {
			for _, full := range []bool{true, false} {
				c := newNamesCheck(testPrefix, nodes, 4369)
				c.full = full
				seen := c.newSeen()
				// A good reply first, so that the fast path has something
				// to compare with.
				if err := c.check(namesReply(4369, good...), seen); err != nil {
					t.Fatalf("full=%v: good reply: %v", full, err)
				}
				err := c.check(tt.reply, seen)
				if !errors.Is(err, errCheck) {
					t.Fatalf("full=%v: check = %v, want a wrong-reply error", full, err)
				}
				// And the good reply still passes afterwards.
				if err := c.check(namesReply(4369, good...), seen); err != nil {
					t.Fatalf("full=%v: good reply after a bad one: %v", full, err)
				}
			}
		})
	}
}

// A reply that differs from the one that passed is checked again, and
// becomes the reply to compare with when it passes.
func TestNamesCheckChangingReply(t *testing.T) {
	c := newNamesCheck(testPrefix, 50, 4369)
	seen := c.newSeen()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20 {
		r := namesReply(4369, runLines(50, rng)...)
		if err := c.check(r, seen); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if p := c.passed.Load(); p == nil || !bytes.Equal(*p, r) {
			t.Fatalf("reply %d is not the one kept", i)
		}
		r[len(r)-2]++ // the caller reuses its buffer: the kept copy must not change
		if p := c.passed.Load(); bytes.Equal(*p, r) {
			t.Fatalf("reply %d: the kept reply shares the caller's buffer", i)
		}
	}
}

func TestNamesCheckAllocs(t *testing.T) {
	const nodes = 1000
	reply := namesReply(4369, runLines(nodes, rand.New(rand.NewPCG(5, 6)))...)
	for _, full := range []bool{true, false} {
		c := newNamesCheck(testPrefix, nodes, 4369)
		c.full = full
		seen := c.newSeen()
		if err := c.check(reply, seen); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() {
			if err := c.check(reply, seen); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("full=%v: %v allocations per check, want 0", full, n)
		}
	}
}

// BenchmarkNamesCheck is the tool's cost of checking a NAMES reply of
// 1000 nodes (about 30 KB), without the request: full checks every line,
// same compares with the reply that passed before.
func BenchmarkNamesCheck(b *testing.B) {
	const nodes = 1000
	reply := namesReply(4369, runLines(nodes, rand.New(rand.NewPCG(7, 8)))...)
	for _, full := range []bool{true, false} {
		name := "same"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			c := newNamesCheck(testPrefix, nodes, 4369)
			c.full = full
			seen := c.newSeen()
			b.SetBytes(int64(len(reply)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.check(reply, seen); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Against a real daemon: namesLoad passes with the run's nodes registered
// and counts every reply as wrong when they are not what it expects.
func TestNamesLoadStock(t *testing.T) {
	epmd := stockEpmd(t)
	tg := &target{Label: epmd, Kind: kindStarted, Path: epmd}
	if err := tg.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer tg.stop()
	cl := tg.client(5 * time.Second)
	const nodes = 20
	regs, lr := registerNodes(t.Context(), cl.Register, testPrefix, 0, nodes, loadSpec{conc: 4, n: nodes, dur: 10 * time.Second, stopOnError: true})
	defer closeAll(regs)
	if lr.ops != nodes {
		t.Fatalf("registered %d of %d nodes: %v", lr.ops, nodes, lr.stopped)
	}
	if tg.daemonPort() == 0 {
		t.Fatalf("no port for %s", tg.Addr)
	}
	f := figure{Workload: wNames, Conc: 2, N: 30, Duration: 10 * time.Second, Timeout: 5 * time.Second}
	for _, tt := range []struct {
		name    string
		prefix  string
		nodes   int
		hdrPort uint16
		ok      bool
	}{
		{"the run's nodes", testPrefix, nodes, tg.daemonPort(), true},
		{"header unchecked", testPrefix, nodes, 0, true},
		{"one more node expected", testPrefix, nodes + 1, tg.daemonPort(), false},
		{"one node fewer expected", testPrefix, nodes - 1, tg.daemonPort(), false},
		{"another prefix", "b1_8_", nodes, tg.daemonPort(), false},
		{"another port", testPrefix, nodes, tg.daemonPort() + 1, false},
	} {
		lr := namesLoad(t.Context(), cl, f, tt.prefix, tt.nodes, tt.hdrPort)
		kinds, examples := lr.errs.snapshot()
		if tt.ok {
			if lr.ops != f.N || lr.errs.total() != 0 {
				t.Errorf("%s: %d ops, errors %v %v; want %d ops, no errors", tt.name, lr.ops, kinds, examples, f.N)
			}
			continue
		}
		if lr.ops != 0 || kinds["wrong reply"] != f.N {
			t.Errorf("%s: %d ops, errors %v; want %d wrong replies", tt.name, lr.ops, kinds, f.N)
		}
	}
}
