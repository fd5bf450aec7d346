//go:build unix

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// Replies shared, pending output capped, unfinished replies reset: through
// both backends, with readers that do not read. What the tests look at is
// what the owner counts (PendingOutput) and what the clients get; how much
// memory a daemon takes under these attacks is measured by
// cmd/epmd-bench's hoard workload, not here.

// bigName is a 255-byte node name, distinct for each i.
func bigName(i int) string { return fmt.Sprintf("%0255d", i) }

// tableNodes makes a NAMES reply of about 7 MB: more than the kernel's
// socket buffers take for a reader that never reads.
const tableNodes = 24000

// startReplies starts a server on backend with a large table, on a
// loopback listener.
func startReplies(t *testing.T, backend string, maxPending int64) (*server.Server, string) {
	t.Helper()
	srv := server.NewFaulty(server.Config{Port: 14369, Backend: backend, Now: time.Now,
		PacketTimeout: time.Minute, MaxPendingOutput: maxPending}, false, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	srv.Fill(0, tableNodes, bigName)
	return srv, ln.Addr().String()
}

// stalledReader asks req on a connection with a small receive buffer and
// does not read: the daemon's write of a large reply stays under way.
func stalledReader(t *testing.T, addr string, req wire.Request) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	b, err := wire.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	return nc.(*net.TCPConn)
}

// waitPending waits until the owner counts want bytes of pending output
// (or, with want < 0, any), and returns what it counts.
func waitPending(t *testing.T, srv *server.Server, want int64) (int64, uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, r := srv.PendingOutput()
		if b == want || want < 0 && b > 0 {
			return b, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending output %d bytes, want %d", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPendingAbove waits until the owner counts more than n bytes of
// pending output, and returns what it counts.
func waitPendingAbove(t *testing.T, srv *server.Server, n int64) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b := pendingBytes(srv); b > n {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending output %d bytes, want more than %d", pendingBytes(srv), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readReply reads a reply to its end and reports how it ended: nil for a
// clean end of stream, else the error (a reset shows as ECONNRESET).
func readReply(t *testing.T, nc net.Conn) ([]byte, error) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no end of the reply after %d bytes", len(b))
	}
	return b, err
}

func namesReply(t *testing.T, b []byte) *wire.NamesResp {
	t.Helper()
	var r wire.NamesResp
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatalf("NAMES reply of %d bytes: %v", len(b), err)
	}
	return &r
}

// TestRepliesShared: readers of the same version of the table share one
// buffer, whichever backend: the pending output is one reply's length, not
// one per reader. A reader of a newer version holds another buffer; each
// reader still gets its whole reply, as of its request.
func TestRepliesShared(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			srv, addr := startReplies(t, backend, -1)
			want, err := (&wire.NamesResp{Port: 14369, Nodes: bigNames(0, tableNodes)}).AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			var readers []*net.TCPConn
			for range 6 {
				readers = append(readers, stalledReader(t, addr, &wire.NamesReq{}))
			}
			dump := stalledReader(t, addr, &wire.DumpReq{})
			// Six NAMES readers hold one buffer; the DUMP reader another
			// (encoded after the NAMES reply, by the same goroutine).
			deadline := time.Now().Add(30 * time.Second)
			for srv.NumConns() < 7 || pendingBytes(srv) <= int64(len(want)) {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections under way, %d bytes pending; want 7 and more than one reply",
						srv.NumConns(), pendingBytes(srv))
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // room for any more than wanted
			b, resets := srv.PendingOutput()
			if b >= 3*int64(len(want)) || b <= int64(len(want)) || resets != 0 {
				t.Fatalf("pending output %d bytes (resets %d), want one NAMES reply (%d bytes) and one DUMP reply",
					b, resets, len(want))
			}
			dump.Close()
			waitPending(t, srv, int64(len(want)))

			// The table changes: a new reader holds a new version.
			srv.Fill(tableNodes, 1, bigName)
			newer := stalledReader(t, addr, &wire.NamesReq{})
			got := waitPendingAbove(t, srv, int64(len(want)))
			if got < 2*int64(len(want)) {
				t.Fatalf("pending output %d bytes, want two versions (%d bytes or more)", got, 2*len(want))
			}

			// Each reader gets its version, whole, and a clean end.
			for i, nc := range readers[:2] {
				b, err := readReply(t, nc)
				if err != nil {
					t.Fatalf("reader %d: %v after %d bytes", i, err, len(b))
				}
				if string(b) != string(want) {
					t.Fatalf("reader %d: %d bytes, want the %d of the table at its request", i, len(b), len(want))
				}
			}
			b2, err := readReply(t, newer)
			if err != nil {
				t.Fatal(err)
			}
			if r := namesReply(t, b2); len(r.Nodes) != tableNodes+1 {
				t.Fatalf("newer reader: %d nodes, want %d", len(r.Nodes), tableNodes+1)
			}
			for _, nc := range readers[2:] {
				nc.Close()
			}
			waitPending(t, srv, 0)
		})
	}
}

// waitConns waits until the owner holds n connections: requests it has
// taken, whose replies are being encoded or written.
func waitConns(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for srv.NumConns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections under way, want %d", srv.NumConns(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pendingBytes(srv *server.Server) int64 {
	b, _ := srv.PendingOutput()
	return b
}

func bigNames(from, n int) []wire.NameEntry {
	var s []wire.NameEntry
	for i := from + n - 1; i >= from; i-- { // newest first
		s = append(s, wire.NameEntry{Name: bigName(i), Port: uint16(1000 + i%60000)})
	}
	return s
}

// TestPendingOutputCap: a write that would take pending output over the
// cap resets the connections holding the oldest buffer, and only them; the
// newcomer and the readers of buffers that still fit get their replies.
func TestPendingOutputCap(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			size, err := (&wire.NamesResp{Port: 14369, Nodes: bigNames(0, tableNodes)}).AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			// Room for two versions, not three.
			srv, addr := startReplies(t, backend, int64(len(size))*5/2)
			old1 := stalledReader(t, addr, &wire.NamesReq{})
			old2 := stalledReader(t, addr, &wire.NamesReq{})
			// Both asked before the table changes.
			waitConns(t, srv, 2)
			waitPending(t, srv, int64(len(size)))
			srv.Fill(tableNodes, 1, bigName)
			mid := stalledReader(t, addr, &wire.NamesReq{})
			waitConns(t, srv, 3)
			waitPendingAbove(t, srv, int64(len(size)))
			if _, r := srv.PendingOutput(); r != 0 {
				t.Fatalf("%d resets with two versions pending, want none", r)
			}
			srv.Fill(tableNodes+1, 1, bigName)
			last := stalledReader(t, addr, &wire.NamesReq{})
			// The oldest buffer's two readers are reset.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, r := srv.PendingOutput(); r == 2 {
					break
				} else if r > 2 || time.Now().After(deadline) {
					t.Fatalf("%d resets, want the 2 readers of the oldest buffer", r)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for i, nc := range []*net.TCPConn{old1, old2} {
				b, err := readReply(t, nc)
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("oldest reader %d: %d bytes ending in %v, want a reset", i, len(b), err)
				}
				if len(b) >= len(size) {
					t.Fatalf("oldest reader %d: the whole reply came before the reset", i)
				}
			}
			for i, nc := range []*net.TCPConn{mid, last} {
				b, err := readReply(t, nc)
				if err != nil {
					t.Fatalf("reader %d: %v after %d bytes", i, err, len(b))
				}
				if r := namesReply(t, b); len(r.Nodes) != tableNodes+1+i {
					t.Fatalf("reader %d: %d nodes, want %d", i, len(r.Nodes), tableNodes+1+i)
				}
			}
			if _, r := srv.PendingOutput(); r != 2 {
				t.Fatalf("%d resets in all, want 2", r)
			}
		})
	}
}

// TestShutdownResetsUnfinishedReplies: a shutdown closes a connection still
// writing its reply at once, with a reset, so that its reader does not
// take the bytes it got for a whole reply; the shutdown does not wait for
// the reply's write deadline (a minute here, longer than Shutdown's
// context).
func TestShutdownResetsUnfinishedReplies(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			// No cap: the two replies together pass the default one.
			srv := server.New(server.Config{Port: 14369, Backend: backend, Now: time.Now,
				PacketTimeout: time.Minute, MaxPendingOutput: -1})
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			srv.Fill(0, tableNodes, bigName)
			names := stalledReader(t, ln.Addr().String(), &wire.NamesReq{})
			dump := stalledReader(t, ln.Addr().String(), &wire.DumpReq{})
			waitConns(t, srv, 2)
			waitPending(t, srv, -1)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			for _, nc := range []*net.TCPConn{names, dump} {
				b, err := readReply(t, nc)
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("%d bytes ending in %v, want a reset", len(b), err)
				}
			}
		})
	}
}

// TestLargeRepliesUnderChurn: NAMES and DUMP replies encoded off the owner
// while the table changes and look-ups go on: every reply is whole and
// shows one version of the table, every look-up is answered.
func TestLargeRepliesUnderChurn(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			// No cap: concurrent readers of different versions of a
			// 7 MB table would pass the default one.
			srv, addr := startReplies(t, backend, -1)
			var wg sync.WaitGroup
			errc := make(chan error, 64)
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 5 {
						var req wire.Request = &wire.NamesReq{}
						if (g+i)%2 == 1 {
							req = &wire.DumpReq{}
						}
						b, err := ask(addr, req)
						if err != nil {
							errc <- err
							return
						}
						n := 0
						switch req.(type) {
						case *wire.NamesReq:
							var r wire.NamesResp
							if err := r.UnmarshalBinary(b); err != nil {
								errc <- err
								return
							}
							n = len(r.Nodes)
						default:
							var r wire.DumpResp
							if err := r.UnmarshalBinary(b); err != nil {
								errc <- err
								return
							}
							n = len(r.Active)
						}
						if n < tableNodes || n > tableNodes+20 {
							errc <- fmt.Errorf("%d nodes, want %d to %d", n, tableNodes, tableNodes+20)
							return
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					srv.Fill(tableNodes+i, 1, bigName)
					b, err := ask(addr, &wire.PortPlease2Req{Name: bigName(i)})
					if err != nil {
						errc <- err
						return
					}
					var r wire.Port2Resp
					if err := r.UnmarshalBinary(b); err != nil || r.Result != 0 {
						errc <- fmt.Errorf("look-up: %v, result %d", err, r.Result)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
			waitPending(t, srv, 0)
		})
	}
}

// ask sends req and reads the reply to the daemon's close.
func ask(addr string, req wire.Request) ([]byte, error) {
	nc, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	b, err := wire.EncodeRequest(req)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(b); err != nil {
		return nil, err
	}
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	out, err := io.ReadAll(nc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w after %d bytes", req.Tag(), err, len(out))
	}
	if len(out) == 0 {
		return nil, errors.New(req.Tag().String() + ": no reply")
	}
	return out, nil
}
