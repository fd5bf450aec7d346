package client_test

// Tests against the stock C epmd, started per test on a free loopback port.
// They skip when no epmd is installed (Debian: apt-get install erlang-base),
// and fail instead under GOPMD_REQUIRE_ERLANG=1 (make test).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/epmdtest"
	"github.com/gopmd/gopmd/epmd/wire"
)

// daemon is one stock epmd process started by a test.
type daemon struct {
	port int
	c    *client.Client // talks to 127.0.0.1:port
	p    *epmdtest.Process
}

// startEpmd starts a stock epmd on a free loopback port (epmdtest.Start)
// and waits until it answers NAMES. Without a stock epmd the test skips,
// or fails under GOPMD_REQUIRE_ERLANG=1 (make test).
func startEpmd(t *testing.T, relaxed bool) *daemon {
	t.Helper()
	var args []string
	if relaxed {
		args = append(args, "-relaxed_command_check")
	}
	p := epmdtest.Start(t, epmdtest.Stock(t), args...)
	return &daemon{port: p.Port, c: p.Client, p: p}
}

// waitExit waits for the daemon to exit on its own and returns its status.
func (d *daemon) waitExit(t *testing.T) int {
	t.Helper()
	code := d.p.Wait(10 * time.Second)
	if code < 0 {
		t.Fatal("epmd did not exit")
	}
	return code
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it returns true, for at most 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func register(t *testing.T, c *client.Client, n wire.Node) *client.Registration {
	t.Helper()
	r, err := c.Register(testContext(t), n)
	if err != nil {
		t.Fatalf("Register(%q): %v", n.Name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func waitDone(t *testing.T, r *client.Registration) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("registration of %q: Done not closed", r.Node().Name)
	}
}

func portHeader(port int) []byte { return []byte{0, 0, byte(port >> 8), byte(port)} }

// Nodes as in the transcripts of the protocol notes: what an OTP node sends,
// and an old-style hidden node with NULs in its extra field.
var (
	alpha = wire.Node{Name: "alpha", Port: 5555, Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}
	beta  = wire.Node{Name: "beta", Port: 6666, Type: wire.NodeHidden, Proto: wire.ProtoTCP4, High: 5, Low: 5, Extra: "EXTRA\x00x"}
)

func TestStockNamesEmpty(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	port, nodes, err := d.c.Names(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if port != uint32(d.port) || len(nodes) != 0 {
		t.Errorf("Names = %d, %v; want %d, no nodes", port, nodes, d.port)
	}
	raw, err := d.c.NamesRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(portHeader(d.port), raw); diff != "" {
		t.Errorf("NamesRaw (-want +got):\n%s", diff)
	}
}

func TestStockRegisterNamesLookup(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	ra := register(t, d.c, alpha)
	rb := register(t, d.c, beta)

	// High 6 gets ALIVE2_X_RESP with a 32-bit creation, never 0..3.
	if ra.ReplyTag() != wire.TagAlive2XResp || ra.Creation() < 4 {
		t.Errorf("alpha: reply %v creation %d; want ALIVE2_X_RESP, creation >= 4", ra.ReplyTag(), ra.Creation())
	}
	// High 5 gets ALIVE2_RESP with a creation of 1..3.
	if rb.ReplyTag() != wire.TagAlive2Resp || rb.Creation() < 1 || rb.Creation() > 3 {
		t.Errorf("beta: reply %v creation %d; want ALIVE2_RESP, creation 1..3", rb.ReplyTag(), rb.Creation())
	}
	if diff := cmp.Diff(beta, rb.Node()); diff != "" {
		t.Errorf("Registration.Node (-want +got):\n%s", diff)
	}

	port, nodes, err := d.c.Names(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.NameEntry{{Name: "beta", Port: 6666}, {Name: "alpha", Port: 5555}} // newest first
	if port != uint32(d.port) {
		t.Errorf("Names port = %d, want %d", port, d.port)
	}
	if diff := cmp.Diff(want, nodes); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	raw, err := d.c.NamesRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := append(portHeader(d.port), "name beta at port 6666\nname alpha at port 5555\n"...)
	if diff := cmp.Diff(wantRaw, raw); diff != "" {
		t.Errorf("NamesRaw (-want +got):\n%s", diff)
	}
	buf, err := d.c.AppendNamesRaw(ctx, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append([]byte("kept"), wantRaw...), buf); diff != "" {
		t.Errorf("AppendNamesRaw (-want +got):\n%s", diff)
	}

	for _, n := range []wire.Node{alpha, beta} {
		got, err := d.c.Lookup(ctx, n.Name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", n.Name, err)
		}
		if diff := cmp.Diff(n, got); diff != "" {
			t.Errorf("Lookup(%q) (-want +got):\n%s", n.Name, diff)
		}
	}
}

func TestStockLookupNotFound(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	if _, err := d.c.Lookup(ctx, "gamma"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Lookup(gamma) error = %v, want ErrNotFound", err)
	}
	// Stock closes silently for a name that is not valid UTF-8, and for a
	// 255-character name (its validator counts the terminating NUL).
	for _, name := range []string{"\xff", strings.Repeat("a", 255)} {
		if _, err := d.c.Lookup(ctx, name); !errors.Is(err, client.ErrClosed) {
			t.Errorf("Lookup(%.10q...) error = %v, want ErrClosed", name, err)
		}
	}
	if _, err := d.c.Lookup(ctx, strings.Repeat("a", 254)); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Lookup(254 x a) error = %v, want ErrNotFound", err)
	}
}

func TestStockRegisterRefused(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)
	register(t, d.c, alpha)

	tests := []struct {
		name string
		node wire.Node
		tag  wire.Tag
	}{
		{"duplicate v6", alpha, wire.TagAlive2XResp},
		{"duplicate v5", wire.Node{Name: "alpha", Port: 1, Type: wire.NodeNormal, High: 5, Low: 5}, wire.TagAlive2Resp},
		{"name of 256 characters", wire.Node{Name: strings.Repeat("n", 256), Port: 1, Type: wire.NodeNormal, High: 6, Low: 5}, wire.TagAlive2XResp},
		{"invalid UTF-8", wire.Node{Name: "\xc0\x80", Port: 1, Type: wire.NodeNormal, High: 6, Low: 5}, wire.TagAlive2XResp},
		{"extra of 1021 bytes", wire.Node{Name: "e", Port: 1, High: 6, Low: 5, Extra: strings.Repeat("x", 1021)}, wire.TagAlive2XResp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := d.c.Register(ctx, tt.node)
			if err == nil {
				r.Close()
				t.Fatal("Register succeeded, want ErrRefused")
			}
			if !errors.Is(err, client.ErrRefused) {
				t.Fatalf("Register error = %v, want ErrRefused", err)
			}
			var re *client.RegisterError
			if !errors.As(err, &re) {
				t.Fatalf("Register error %T is not a *RegisterError", err)
			}
			want := &client.RegisterError{Name: tt.node.Name, Result: 1, Creation: wire.ErrorCreation}
			if diff := cmp.Diff(want, re); diff != "" {
				t.Errorf("RegisterError (-want +got):\n%s", diff)
			}
		})
	}
	// The refusals left alpha alone.
	if _, err := d.c.Lookup(ctx, "alpha"); err != nil {
		t.Errorf("Lookup(alpha) after refusals: %v", err)
	}
}

func TestStockRegistrationCloseUnregisters(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	r := register(t, d.c, alpha)
	if err := r.Err(); err != nil {
		t.Errorf("Err while registered = %v, want nil", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitDone(t, r)
	if err := r.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	eventually(t, "alpha is unregistered", func() bool {
		_, nodes, err := d.c.Names(ctx)
		return err == nil && len(nodes) == 0
	})
	if _, err := d.c.Lookup(ctx, "alpha"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Lookup after Close: %v, want ErrNotFound", err)
	}
	// Re-registering a remembered name advances its creation.
	r2 := register(t, d.c, alpha)
	if r2.Creation() <= r.Creation() {
		t.Errorf("creation after re-registering = %d, want > %d", r2.Creation(), r.Creation())
	}
}

func TestStockStop(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	r := register(t, d.c, alpha)
	stopped, err := d.c.Stop(ctx, "alpha")
	if err != nil || !stopped {
		t.Fatalf("Stop(alpha) = %v, %v; want true, nil", stopped, err)
	}
	waitDone(t, r)
	if err := r.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err after STOP = %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after STOP: %v", err)
	}
	if _, err := d.c.Lookup(ctx, "alpha"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Lookup after STOP: %v, want ErrNotFound", err)
	}

	stopped, err = d.c.Stop(ctx, "nosuch")
	if err != nil || stopped {
		t.Errorf("Stop(nosuch) = %v, %v; want false, nil", stopped, err)
	}
	// Stock sends "NOEXISTSTOPPED"; like every client we read 7 bytes.
	raw, err := d.c.StopRaw(ctx, "nosuch")
	if err != nil || string(raw) != "NOEXIST" {
		t.Errorf("StopRaw(nosuch) = %q, %v; want NOEXIST", raw, err)
	}
}

func TestStockStopNotRelaxed(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, false)
	ctx := testContext(t)
	register(t, d.c, alpha)

	if _, err := d.c.Stop(ctx, "alpha"); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Stop without relaxed check: %v, want ErrClosed", err)
	}
	raw, err := d.c.StopRaw(ctx, "alpha")
	if !errors.Is(err, client.ErrClosed) || len(raw) != 0 {
		t.Errorf("StopRaw without relaxed check = %q, %v; want nothing, ErrClosed", raw, err)
	}
	if _, err := d.c.Lookup(ctx, "alpha"); err != nil {
		t.Errorf("alpha gone after refused STOP: %v", err)
	}
}

func TestStockDump(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	register(t, d.c, alpha)
	rb := register(t, d.c, beta)
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	var dump wire.DumpResp
	eventually(t, "beta is remembered", func() bool {
		var err error
		dump, err = d.c.Dump(ctx)
		return err == nil && len(dump.Old) == 1
	})
	if dump.Port != uint32(d.port) {
		t.Errorf("Dump port = %d, want %d", dump.Port, d.port)
	}
	if len(dump.Active) != 1 || dump.Active[0].Name != "alpha" || dump.Active[0].Port != 5555 || dump.Active[0].Fd <= 0 {
		t.Errorf("Dump active = %+v, want alpha at 5555 with an fd", dump.Active)
	}
	if dump.Old[0].Name != "beta" || dump.Old[0].Port != 6666 {
		t.Errorf("Dump old = %+v, want beta at 6666", dump.Old)
	}

	raw, err := d.c.DumpRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := append(portHeader(d.port), fmt.Sprintf(
		"active name     <alpha> at port 5555, fd = %d\n\x00old/unused name <beta>, port = 6666, fd = %d \n\x00",
		dump.Active[0].Fd, dump.Old[0].Fd)...)
	if diff := cmp.Diff(want, raw); diff != "" {
		t.Errorf("DumpRaw (-want +got):\n%s", diff)
	}
}

func TestStockKill(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, false)
	ctx := testContext(t)

	r := register(t, d.c, alpha)
	ok, err := d.c.Kill(ctx)
	if err != nil || ok {
		t.Fatalf("Kill with a node registered = %v, %v; want false, nil", ok, err)
	}
	raw, err := d.c.KillRaw(ctx)
	if err != nil || string(raw) != "NO" {
		t.Fatalf("KillRaw with a node registered = %q, %v; want NO", raw, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The daemon drops alpha when it sees the close; until then it says NO.
	eventually(t, "KILL succeeds", func() bool {
		ok, err := d.c.Kill(ctx)
		if err != nil {
			t.Fatalf("Kill: %v", err)
		}
		return ok
	})
	if code := d.waitExit(t); code != 0 {
		t.Errorf("epmd exit status after KILL = %d, want 0", code)
	}
	if _, _, err := d.c.Names(ctx); err == nil {
		t.Error("Names after KILL succeeded")
	}
}

func TestStockKillRelaxedEndsRegistrations(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	r := register(t, d.c, alpha)
	ok, err := d.c.Kill(ctx)
	if err != nil || !ok {
		t.Fatalf("relaxed Kill = %v, %v; want true, nil", ok, err)
	}
	waitDone(t, r)
	if err := r.Err(); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Err after KILL = %v, want ErrClosed", err)
	}
	if code := d.waitExit(t); code != 0 {
		t.Errorf("epmd exit status after KILL = %d, want 0", code)
	}
}

func TestStockLocalDialOrder(t *testing.T) {
	t.Parallel()
	d := startEpmd(t, true)
	ctx := testContext(t)

	// NewLocal tries ::1 first (the daemon listens there too when the
	// host has IPv6), then 127.0.0.1.
	port, _, err := client.NewLocal(d.port).Names(ctx)
	if err != nil || port != uint32(d.port) {
		t.Errorf("NewLocal(%d).Names = %d, %v", d.port, port, err)
	}

	// A first address that refuses the connection falls through.
	c := &client.Client{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))), Fallback: []string{d.c.Addr}}
	if port, _, err := c.Names(ctx); err != nil || port != uint32(d.port) {
		t.Errorf("Names with fallback = %d, %v", port, err)
	}
	conn, err := c.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial with fallback: %v", err)
	}
	defer conn.Close()
	if got := conn.RemoteAddr().String(); got != d.c.Addr {
		t.Errorf("Dial connected to %s, want %s", got, d.c.Addr)
	}
	// Fallback alone is enough.
	c = &client.Client{Fallback: []string{d.c.Addr}}
	if port, _, err := c.Names(ctx); err != nil || port != uint32(d.port) {
		t.Errorf("Names with only Fallback = %d, %v", port, err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
