//go:build linux

package server_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// handOver freezes d's server, restores its state into a new server with
// duplicates of its descriptors (as another process receives them), serves
// the listeners there, and abandons the old one.
func handOver(t *testing.T, d *daemon) *server.Server {
	t.Helper()
	fr, err := d.srv.Freeze(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := map[string]*os.File{}
	for _, nf := range fr.Conns {
		conns[nf.Name] = nf.File
	}
	s2, err := server.Restore(server.Config{Port: 14369, Now: func() time.Time { return t0 }, Backend: server.BackendEpoll}, fr.Snapshot, conns)
	if err != nil {
		fr.Close()
		t.Fatal(err)
	}
	for _, nf := range fr.Listeners {
		ln, err := net.FileListener(nf.File)
		nf.File.Close()
		if err != nil {
			t.Fatal(err)
		}
		go s2.Serve(ln)
	}
	d.srv.Abandon()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s2.Shutdown(ctx)
	})
	return s2
}

func portPlease(t *testing.T, addr, name string) []byte {
	t.Helper()
	return exchange(t, addr, frame([]byte{byte(wire.TagPortPlease2Req)}, []byte(name)))
}

// The new server answers as the old would have: the same names, the
// registration sockets still hold their names, a refused socket stays
// refused, creations go on, and a socket whose peer left in transit frees
// its name.
func TestHandoverRestoresState(t *testing.T) {
	d := startServer(t, server.Config{Backend: server.BackendEpoll})
	ca, _ := register(t, d.addr(), alpha)
	cb, _ := register(t, d.addr(), beta)
	refused, reply := register(t, d.addr(), alpha) // duplicate: refused, kept open
	if reply[1] != 1 {
		t.Fatalf("duplicate ALIVE2 reply %x", reply)
	}
	// A name that comes and goes, so that one is remembered.
	gone := wire.Node{Name: "gone", Port: 7000, Type: 77, High: 6, Low: 5}
	cg, _ := register(t, d.addr(), gone)
	cg.Close()
	waitFor(t, "gone unregistered", func() bool { live, _ := d.srv.Snapshot(); return len(live) == 2 })
	live0, old0 := d.srv.Snapshot()
	names0 := exchange(t, d.addr(), frame([]byte{byte(wire.TagNamesReq)}))

	// beta's peer leaves while the sockets are in transit.
	fr, err := d.srv.Freeze(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fr.Conns) != 3 || len(fr.Listeners) != len(d.addrs) {
		t.Fatalf("frozen: %d sockets, %d listeners", len(fr.Conns), len(fr.Listeners))
	}
	cb.Close()
	// While frozen, the old server does not see it.
	time.Sleep(20 * time.Millisecond)
	if live, _ := d.srv.Snapshot(); len(live) != 2 {
		t.Fatalf("frozen server changed: %v", live)
	}
	fr.Close()
	d.srv.Thaw()
	// Thawed, it sees the close: the test of a failed handover.
	waitFor(t, "beta unregistered after thaw", func() bool { live, _ := d.srv.Snapshot(); return len(live) == 1 })
	cb, _ = register(t, d.addr(), beta)
	live0, old0 = d.srv.Snapshot()
	names0 = exchange(t, d.addr(), frame([]byte{byte(wire.TagNamesReq)}))

	s2 := handOver(t, d)
	live1, old1 := s2.Snapshot()
	ignoreFd := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Fd" }, cmp.Ignore())
	if diff := cmp.Diff(live0, live1, ignoreFd); diff != "" {
		t.Errorf("live (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(old0, old1); diff != "" {
		t.Errorf("remembered (-before +after):\n%s", diff)
	}
	wantBytes(t, "NAMES after handover", names0, exchange(t, d.addr(), frame([]byte{byte(wire.TagNamesReq)})))
	if got := portPlease(t, d.addr(), "alpha"); len(got) < 4 || got[1] != 0 {
		t.Errorf("PORT_PLEASE2 alpha after handover: %x", got)
	}
	if n := s2.NumConns(); n != 3 {
		t.Errorf("%d connections after handover, want 3", n)
	}

	// A peer that closes now is seen by the new server; the name comes
	// back with the next creation, as from a daemon never restarted.
	ca.Close()
	waitFor(t, "alpha unregistered", func() bool { live, _ := s2.Snapshot(); return len(live) == 1 })
	refused.Close()
	waitFor(t, "refused socket closed", func() bool { return s2.NumConns() == 1 })
	// What a daemon never restarted would have given: the same state,
	// alpha's close, alpha's registration.
	want, err := registry.Import(registry.State{Live: live0, Remembered: old0}, registry.MaxRemembered)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := want.Owner("alpha")
	want.Unregister("alpha", owner)
	wantCreation, _ := want.Register(alpha, 1<<40, 0, t0.Unix())
	_, reply = register(t, d.addr(), alpha)
	_, got, err := wire.DecodeAlive2Reply(reply)
	if err != nil || got != wantCreation {
		t.Errorf("alpha's creation after handover %d (%v), want %d", got, err, wantCreation)
	}
	cb.Close()
}

// A peer that leaves while its socket is in transit: the new server
// finds it gone at once and frees its name.
func TestHandoverPeerGoneInTransit(t *testing.T) {
	d := startServer(t, server.Config{Backend: server.BackendEpoll})
	ca, _ := register(t, d.addr(), alpha)
	fr, err := d.srv.Freeze(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ca.Close()
	conns := map[string]*os.File{}
	for _, nf := range fr.Conns {
		conns[nf.Name] = nf.File
	}
	s2, err := server.Restore(server.Config{Port: 14369, Backend: server.BackendEpoll}, fr.Snapshot, conns)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown(context.Background())
	for _, nf := range fr.Listeners {
		nf.File.Close()
	}
	d.srv.Abandon()
	waitFor(t, "alpha freed", func() bool { live, old := s2.Snapshot(); return len(live) == 0 && len(old) == 1 })
	if n := s2.NumConns(); n != 0 {
		t.Errorf("%d connections left", n)
	}
}

// Restore refuses descriptors that do not match the snapshot.
func TestRestoreChecksDescriptors(t *testing.T) {
	d := startServer(t, server.Config{Backend: server.BackendEpoll})
	register(t, d.addr(), alpha)
	fr, err := d.srv.Freeze(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	defer d.srv.Thaw()
	if _, err := server.Restore(server.Config{Backend: server.BackendEpoll}, fr.Snapshot, map[string]*os.File{}); err == nil {
		t.Error("restored without the registration's socket")
	}
	extra, _ := os.Open(os.DevNull)
	f, _ := os.Open(os.DevNull)
	if _, err := server.Restore(server.Config{Backend: server.BackendEpoll}, fr.Snapshot, map[string]*os.File{fr.Conns[0].Name: f, server.ConnPrefix + "999": extra}); err == nil {
		t.Error("restored with a descriptor the snapshot does not name")
	}
}

// The portable backend cannot hand over its sockets: Freeze refuses and
// the server serves on.
func TestHandoverPortableRefuses(t *testing.T) {
	d := startServer(t, server.Config{Backend: server.BackendPortable})
	c, _ := register(t, d.addr(), alpha)
	if _, err := d.srv.Freeze(context.Background(), 0); !errors.Is(err, server.ErrHandoverUnsupported) {
		t.Fatalf("Freeze: %v", err)
	}
	if got := portPlease(t, d.addr(), "alpha"); len(got) < 4 || got[1] != 0 {
		t.Errorf("PORT_PLEASE2 after the refusal: %x", got)
	}
	c.Close()
}
