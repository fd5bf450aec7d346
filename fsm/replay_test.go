package fsm_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/epmdtest"
	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

// stepRecord is one line of a daemon's step log: a transcript command and,
// for a step, the actions the daemon carried out.
type stepRecord struct {
	line    string
	actions []string
	step    bool
}

// stepLog collects a server's -d -d -d records.
type stepLog struct {
	mu   sync.Mutex
	recs []stepRecord
}

func (l *stepLog) Enabled(_ context.Context, lv slog.Level) bool { return lv <= server.LevelTrace }

func (l *stepLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level != server.LevelTrace {
		return nil
	}
	rec := stepRecord{line: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "actions" {
			rec.step = true
			rec.actions, _ = a.Value.Any().([]string)
		}
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *stepLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *stepLog) WithGroup(string) slog.Handler      { return l }

func (l *stepLog) records() []stepRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// TestReplayDaemonLog runs a real daemon (in process, on the platform's
// backend) through registrations, look-ups, NAMES, DUMP, a duplicate that
// waits out the probe's grace, a holder that goes while a newcomer waits,
// STOP and closes, records its step log, and replays the log through fresh
// state machines sharing one registry: every step must give the actions
// the daemon carried out.
func TestReplayDaemonLog(t *testing.T) {
	log := &stepLog{}
	d := epmdtest.NewServer(t, server.Config{Port: 14369, Relaxed: true, Logger: slog.New(log),
		ProbeGrace: 150 * time.Millisecond})
	addr := d.Addr()

	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	request := func(req wire.Request) []byte {
		c := dial()
		b, _ := wire.EncodeRequest(req)
		c.Write(b)
		reply, _ := io.ReadAll(c)
		return reply
	}
	register := func(name string, port uint16) (net.Conn, byte) {
		c := dial()
		b, _ := wire.EncodeRequest(&wire.Alive2Req{Node: wire.Node{Name: name, Port: port, Type: 77, High: 6, Low: 5}})
		c.Write(b)
		var reply [6]byte
		if _, err := io.ReadFull(c, reply[:]); err != nil {
			t.Fatalf("ALIVE2 %s: %v", name, err)
		}
		return c, reply[1]
	}
	waitFor := func(what string, cond func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	live := func() int { l, _ := d.Snapshot(); return len(l) }

	alpha, _ := register("alpha", 5555)
	register("beta", 6666)
	request(&wire.PortPlease2Req{Name: "alpha"})
	request(&wire.PortPlease2Req{Name: "gamma"})
	request(&wire.NamesReq{})
	request(&wire.DumpReq{})
	if _, r := register("alpha", 7777); r != 1 { // waits out the grace
		t.Fatalf("live duplicate accepted")
	}
	// A newcomer waits while the holder is alive; the holder goes.
	done := make(chan byte, 1)
	go func() {
		c := dial()
		b, _ := wire.EncodeRequest(&wire.Alive2Req{Node: wire.Node{Name: "alpha", Port: 8888, Type: 77, High: 6, Low: 5}})
		c.Write(b)
		var reply [6]byte
		io.ReadFull(c, reply[:])
		done <- reply[1]
	}()
	time.Sleep(30 * time.Millisecond)
	alpha.Close()
	if r := <-done; r != 0 {
		t.Errorf("newcomer refused after its holder went")
	}
	request(&wire.StopReq{Name: "beta"})
	waitFor("beta stopped", func() bool { return live() == 1 })
	request(&wire.KillReq{}) // relaxed: the daemon stops
	<-d.Done()

	recs := log.records()
	reg := registry.New(registry.MaxRemembered)
	conns := map[string]*fsm.Conn{}
	steps := 0
	for i, rec := range recs {
		words, args, err := tokenize(rec.line)
		if err != nil {
			t.Fatalf("record %d %q: %v", i, rec.line, err)
		}
		if len(words) >= 3 && words[0] == "conn" {
			id, _ := strconv.ParseUint(strings.TrimPrefix(words[1], "c"), 10, 64)
			cfg := fsm.Config{ID: registry.ConnID(id)}
			for _, f := range words[2:] {
				cfg.Local = cfg.Local || f == "local"
				cfg.Relaxed = cfg.Relaxed || f == "relaxed"
			}
			port, _ := args.int("port", 0)
			fd, _ := args.int("fd", 0)
			grace, _ := args.int64("grace", 0)
			cfg.Port, cfg.Fd, cfg.ProbeGrace = uint32(port), fd, grace
			conns[words[1]] = fsm.New(cfg)
			continue
		}
		if !rec.step {
			continue
		}
		c := conns[words[0]]
		if c == nil {
			t.Fatalf("record %d %q: unknown connection", i, rec.line)
		}
		ev, err := parseEvent(words[1:], args)
		if err != nil {
			t.Fatalf("record %d %q: %v", i, rec.line, err)
		}
		var got []string
		for _, a := range c.Step(reg, ev) {
			got = append(got, fsm.ActionString(a))
		}
		if d := cmp.Diff(rec.actions, got, cmp.Comparer(func(a, b []string) bool {
			return slices.Equal(a, b)
		})); d != "" {
			t.Errorf("record %d %q: replayed actions (-daemon +fsm):\n%s", i, rec.line, d)
		}
		steps++
	}
	t.Logf("replayed %d steps of %d log records", steps, len(recs))
	if steps < 15 {
		t.Errorf("only %d steps in the log", steps)
	}
	if l := reg.Live(); len(l) != 1 || l[0].Name != "alpha" || l[0].Port != 8888 {
		t.Errorf("replayed registry: %v, want alpha on 8888", l)
	}
}
