//go:build linux

package server_test

// Tests of the event loop (loop.go): what it leaves in its epoll set when a
// socket leaves it some other way than by its last close.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopmd/gopmd/epmd/server"
	"github.com/gopmd/gopmd/epmd/wire"
)

// cpuShare returns the share of one CPU this process used over d.
func cpuShare(d time.Duration) float64 {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, c0 := time.Now(), cpu()
	time.Sleep(d)
	return float64(cpu()-c0) / float64(time.Since(start))
}

// staleEpollEntries lists the registrations, in any epoll set of this
// process, whose descriptor is closed or now names another file: epoll
// forgets a descriptor only when the last descriptor of its open file is
// closed, so closing one of two duplicates leaves the registration, and
// its events, behind. Only entries seen stale twice, 200 ms apart, are
// reported, so that a descriptor closed during a look is not taken for
// one.
func staleEpollEntries(t *testing.T) []string {
	t.Helper()
	look := func() map[string]bool {
		stale := map[string]bool{}
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		for _, e := range ents {
			if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
				continue
			}
			info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			if err != nil {
				continue // closed meanwhile
			}
			for _, line := range strings.Split(string(info), "\n") {
				// tfd:        8 events:       19 data:    4000000000000001  pos:0 ino:2e0e sdev:8
				f := strings.Fields(line)
				if len(f) < 8 || f[0] != "tfd:" || f[4] != "data:" {
					continue
				}
				var ino string
				for _, kv := range f[6:] {
					if v, ok := strings.CutPrefix(kv, "ino:"); ok {
						ino = v
					}
				}
				want, err := strconv.ParseUint(ino, 16, 64)
				if err != nil {
					continue
				}
				var st syscall.Stat_t
				if err := syscall.Stat("/proc/self/fd/"+f[1], &st); err == nil && st.Ino == want {
					continue
				}
				stale[fmt.Sprintf("epoll fd %s: descriptor %s (inode %d, key %s, events %s)", e.Name(), f[1], want, f[5], f[3])] = true
			}
		}
		return stale
	}
	first := look()
	time.Sleep(200 * time.Millisecond)
	var both []string
	for k := range look() {
		if first[k] {
			both = append(both, k)
		}
	}
	return both
}

// TestLongReplyToPendingRequestLeavesEpollSet: a request that arrived in
// pieces waits in the loop's epoll set; when its reply is too big for the
// socket buffer, a goroutine finishes it on a duplicate of the descriptor.
// The loop's registration must not outlive the loop's descriptor: it would
// stay behind with the duplicate, level-triggered, and once the client's
// FIN is in, wake the loop again and again, for nothing, until the reply
// is finished or cut at the packet timeout.
func TestLongReplyToPendingRequestLeavesEpollSet(t *testing.T) {
	// Small send buffers, inherited by the accepted sockets, so that the
	// reply cannot be written at once.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Port: 14369, PacketTimeout: 3 * time.Second})
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	addr := ln.Addr().String()

	const nodes = 300
	want := 4
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("%03d", i) + strings.Repeat("x", 240)
		c, err := rawRegister(addr, node(name, uint16(10000+i)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		want += len("name " + name + " at port 10000\n")
	}

	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*net.TCPConn)
	t.Cleanup(func() { c.Close() })
	c.Write([]byte{0}) // not a whole request at accept: it waits in the epoll set
	time.Sleep(200 * time.Millisecond)
	c.Write([]byte{1, 'n'}) // now it is; the reply does not fit
	time.Sleep(200 * time.Millisecond)
	c.CloseWrite() // the client's FIN, its reply still unread
	// The reply must not fit in the client's receive queue and the
	// daemon's send buffer (8 KiB): only then is it finished elsewhere.
	if raw, err := c.SyscallConn(); err == nil {
		inq := -1
		raw.Control(func(fd uintptr) { inq, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if inq < 0 || inq+32<<10 > want {
			t.Fatalf("setup: %d of %d reply bytes already queued to the client", inq, want)
		}
	}

	time.Sleep(100 * time.Millisecond)
	stale := staleEpollEntries(t)
	share := cpuShare(time.Second)
	t.Logf("CPU while the reply waits for its reader: %.0f%% of one core", 100*share)
	for _, s := range stale {
		t.Errorf("stale epoll registration: %s", s)
	}
	if share > 0.5 {
		t.Errorf("the daemon used %.0f%% of a core while a reader did not read its reply", 100*share)
	}

	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, c)
	if err != nil || got != int64(want) {
		t.Errorf("NAMES reply: %d of %d bytes, then %v; want all of it and end of stream", got, want, err)
	}
}

// TestPendingAlive2ProbeDoesNotSpin: an ALIVE2 that arrived in pieces, for
// a name whose holder is alive, waits out the probe grace in a goroutine.
// Meanwhile nobody may be woken for its socket: if its client half-closes
// (or sends a byte), a registration left in the loop's epoll set under its
// pending key would wake the loop for nothing until the grace is over.
func TestPendingAlive2ProbeDoesNotSpin(t *testing.T) {
	d := startServer(t, server.Config{ProbeGrace: 3 * time.Second})
	register(t, d.addr(), alpha)

	c := dial(t, d.addr()).(*net.TCPConn)
	req := alive2(t, alpha)
	c.Write(req[:1]) // not a whole request at accept: it waits in the epoll set
	time.Sleep(200 * time.Millisecond)
	c.Write(req[1:]) // now it is, and the holder is alive: the probe waits
	time.Sleep(100 * time.Millisecond)
	sent := time.Now()
	c.CloseWrite()

	share := cpuShare(time.Second)
	t.Logf("CPU during the probe grace: %.0f%% of one core", 100*share)
	if share > 0.5 {
		t.Errorf("the daemon used %.0f%% of a core while an ALIVE2 waited for the holder of its name", 100*share)
	}

	// After the grace: refused as a duplicate, then closed (its client
	// had closed its side).
	reply, closed := readAll(t, c, 10*time.Second)
	if len(reply) < 2 || reply[0] != byte(wire.TagAlive2XResp) && reply[0] != byte(wire.TagAlive2Resp) || reply[1] != 1 || !closed {
		t.Errorf("newcomer got %x, closed=%v; want a refusal, then end of stream", reply, closed)
	}
	if waited := time.Since(sent); waited < 2*time.Second {
		t.Errorf("refused after %v, before the probe grace", waited)
	}
}

// TestFailedSharedListenerLeavesEpollSet: a listening socket shared with
// another holder (systemd keeps the sockets it passes) that fails for good
// must leave the loop's epoll set. Closing the loop's descriptor alone
// does not remove it, as the socket stays open elsewhere: it would report
// its hang-up, level-triggered, to a loop that no longer knows it.
func TestFailedSharedListenerLeavesEpollSet(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ln.(*net.TCPListener).File() // the other holder
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	srv := server.New(server.Config{Port: 14369})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	if got := exchange(t, addr, frame([]byte("n"))); len(got) != 4 {
		t.Fatalf("NAMES: %x", got)
	}

	// The socket fails: accept now gives EINVAL.
	rc, err := other.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("Serve returned nil after its listener failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its listener failed")
	}

	stale := staleEpollEntries(t)
	share := cpuShare(time.Second)
	t.Logf("CPU after the listener failed: %.0f%% of one core", 100*share)
	for _, s := range stale {
		t.Errorf("stale epoll registration: %s", s)
	}
	if share > 0.5 {
		t.Errorf("the daemon used %.0f%% of a core after a listener failed", 100*share)
	}
}
