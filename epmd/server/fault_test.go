package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/epmdtest"
	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// backends lists the backends this system has.
func backends() []string {
	if runtime.GOOS == "linux" {
		return []string{server.BackendEpoll, server.BackendPortable}
	}
	return []string{server.BackendPortable}
}

// startFaulty starts a server on backend with write faults from write, on
// a loopback listener, and returns it with its address.
func startFaulty(t *testing.T, backend string, write func() server.WriteFault) (*server.Server, string) {
	t.Helper()
	srv := server.NewFaulty(server.Config{Port: 14369, Backend: backend, Now: time.Now,
		PacketTimeout: 5 * time.Second}, false, write)
	return srv, epmdtest.Serve(t, srv).Addr()
}

// TestWriteFaults drives the same requests through each backend with the
// faults the seam can inject into a reply's writes. A failed write ends
// the connection without a reply and leaves no registration; a write that
// would block (EAGAIN) or takes only part of the reply is finished when
// the socket drains, and the client gets the whole reply.
func TestWriteFaults(t *testing.T) {
	for _, backend := range backends() {
		for _, tc := range []struct {
			name  string
			fault server.WriteFault
			fails bool
		}{
			{"error", server.FaultError, true},
			{"reset", server.FaultReset, true},
			{"again", server.FaultAgain, false},
			{"partial", server.FaultPartial, false},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				// Every other write attempt is faulty, so that a
				// would-block is followed by a write that goes through.
				var n atomic.Int64
				srv, addr := startFaulty(t, backend, func() server.WriteFault {
					if n.Add(1)%2 == 1 {
						return tc.fault
					}
					return server.FaultNone
				})
				checkFault := func(what string, raw []byte, want []byte) {
					t.Helper()
					c := dial(t, addr)
					c.Write(raw)
					if tc.fails && runtime.GOOS != "windows" {
						// fsm turns the close planned with the reply into
						// a reset: the client sees an error, not a short
						// reply.
						c.SetReadDeadline(time.Now().Add(5 * time.Second))
						var b [16]byte
						n, err := c.Read(b[:])
						if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
							t.Errorf("%s: read %x, %v after a failed write; want a reset", what, b[:n], err)
						}
						return
					}
					got, closed := readAll(t, c, 5*time.Second)
					switch {
					case !closed:
						t.Errorf("%s: connection left open after %x", what, got)
					case tc.fails && len(got) != 0:
						t.Errorf("%s: reply %x after a failed write, want none", what, got)
					case !tc.fails && string(got) != string(want):
						t.Errorf("%s: reply %x, want %x", what, got, want)
					}
				}
				n.Store(0)
				checkFault("NAMES", frame([]byte("n")), hex(t, "00 00 38 21"))
				n.Store(0)
				checkFault("PORT_PLEASE2", frame([]byte("zalpha")), hex(t, "77 01"))

				// ALIVE2: refused by a failed write (no zombie
				// registration), or answered in full and kept.
				n.Store(0)
				c := dial(t, addr)
				c.Write(alive2(t, alpha))
				reply := make([]byte, 6)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, err := io.ReadFull(c, reply)
				if tc.fails {
					if k != 0 {
						t.Errorf("ALIVE2: reply %x after a failed write", reply[:k])
					}
					waitFor(t, "the failed registration removed", func() bool {
						live, _ := srv.Snapshot()
						return len(live) == 0
					})
					return
				}
				if err != nil || reply[0] != byte(wire.TagAlive2XResp) || reply[1] != 0 {
					t.Fatalf("ALIVE2: reply %x, %v", reply[:k], err)
				}
				if live, _ := srv.Snapshot(); len(live) != 1 {
					t.Errorf("registry after ALIVE2: %v", live)
				}
				c.Close()
				waitFor(t, "the registration ended with its socket", func() bool {
					live, _ := srv.Snapshot()
					return len(live) == 0 && srv.NumConns() == 0
				})
			})
		}
	}
}

// TestPeerClosesMidReply: a client that reads part of a NAMES reply too
// big for the socket buffers and closes its end. The daemon must finish
// with it (a failed write, then the close), forget it, and go on serving,
// on each backend.
func TestPeerClosesMidReply(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			srv, addr := startFaulty(t, backend, nil)
			const nodes = 300
			for i := 0; i < nodes; i++ {
				n := alpha
				n.Name = fmt.Sprintf("%03d", i) + strings.Repeat("x", 240)
				register(t, addr, n)
			}
			for range 3 {
				c := dial(t, addr).(*net.TCPConn)
				c.SetReadBuffer(4096)
				c.Write(frame([]byte("n")))
				var b [100]byte
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, b[:]); err != nil {
					t.Fatal(err)
				}
				c.SetLinger(0)
				c.Close() // a reset: the daemon's next write fails
			}
			waitFor(t, "the abandoned replies forgotten", func() bool { return srv.NumConns() == nodes })
			got := exchange(t, addr, frame([]byte("zalpha")))
			if len(got) < 2 || got[1] != 1 {
				t.Errorf("look-up after abandoned replies: %x", got)
			}
			if live, _ := srv.Snapshot(); len(live) != nodes {
				t.Errorf("%d registrations after abandoned replies, want %d", len(live), nodes)
			}
		})
	}
}
