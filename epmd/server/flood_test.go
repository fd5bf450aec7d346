//go:build linux

package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gopmd/gopmd/epmd/client"
	"github.com/gopmd/gopmd/epmd/wire"
)

// openIdle opens up to n connections to addr from workers goroutines and
// returns those that connected, with the number of dial errors.
func openIdle(addr string, n, workers int, timeout time.Duration) ([]net.Conn, int) {
	var mu sync.Mutex
	var conns []net.Conn
	failed := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := net.DialTimeout("tcp", addr, timeout)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, failed
}

func closeConns(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// TestIdleFlood: 15,000 idle connections at once (opened, nothing sent)
// while other clients look a node up. Ours holds them all (its limit is the
// file limit, 20000 here) and every look-up succeeds. Stock keeps about
// 1019 and closes the rest at once, and then refuses look-ups until the
// idle ones time out: a figure. Our daemon runs as its own process, since
// 15,000 connections on both ends would exceed one process's limit.
func TestIdleFlood(t *testing.T) {
	skipShort(t, "15,000 connections, twice")
	const flood = 15000
	if !fdsAvailable(t, flood+1000) {
		return
	}
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) {
			p := startDaemon(t, kind, daemonPath(t, kind), nil)
			r, err := (&client.Client{Addr: p.addr(), Timeout: 5 * time.Second}).Register(context.Background(), node("target", 4711))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			load := func() loadResult {
				return pacedLookups(p.addr(), "target", 4711, 4, 1000, 5*time.Second, 10*time.Second, time.Millisecond)
			}
			base := load()
			baseFds := openFds(strconv.Itoa(p.pid()))

			start := time.Now()
			conns, failed := openIdle(p.addr(), flood, 32, 5*time.Second)
			opened := time.Since(start)
			defer closeConns(conns)
			// Handshakes complete in the kernel; wait for the accepts.
			fds := 0
			settle(10*time.Second, func() bool {
				fds = openFds(strconv.Itoa(p.pid()))
				return kind == stock || fds >= baseFds+len(conns)
			})
			during := load()
			figure(t, "flood/"+string(kind)+"/baseline", "%s", base)
			figure(t, "flood/"+string(kind)+"/idle", "%d connections opened in %.1f s (%d dials failed), daemon descriptors %d -> %d, resident memory %s; %s",
				len(conns), opened.Seconds(), failed, baseFds, fds, rss(p.pid()), during)
			if kind == gopmd {
				if failed > 0 || fds < baseFds+flood {
					t.Errorf("gopmd holds %d descriptors for %d idle connections (%d dials failed)", fds-baseFds, flood, failed)
				}
				if base.failed > 0 || during.failed > 0 || during.ok == 0 {
					t.Errorf("look-ups failed: baseline %s; under the flood %s", base, during)
				}
			}
			closeConns(conns)
			conns = nil
			if kind == gopmd {
				if !settle(10*time.Second, func() bool { return openFds(strconv.Itoa(p.pid())) <= baseFds }) {
					t.Errorf("daemon descriptors %d after the flood closed, baseline %d", openFds(strconv.Itoa(p.pid())), baseFds)
				}
				if after := load(); after.failed > 0 {
					t.Errorf("after the flood: %s", after)
				}
			}
		})
	}
}

// rss returns the resident memory of process pid, from /proc/PID/status.
func rss(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return "?"
}

// TestFileLimitReached runs the daemon with a file limit of 64 (prlimit),
// with five nodes registered, and opens connections until it can accept no
// more. Ours logs the failing accepts and waits; once the connections
// close it serves again, with every registration intact. Stock exits 1 on
// the first EMFILE and every registration is lost: a figure.
func TestFileLimitReached(t *testing.T) {
	prlimit, err := execLookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: " + err.Error())
	}
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) {
			p := startDaemon(t, kind, daemonPath(t, kind), []string{prlimit, "--nofile=64:64", "--"})
			ctx := context.Background()
			cl := &client.Client{Addr: p.addr(), Timeout: 5 * time.Second}
			var regs []*client.Registration
			for i := 0; i < 5; i++ {
				r, err := cl.Register(ctx, node("keep"+strconv.Itoa(i), uint16(7000+i)))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				regs = append(regs, r)
			}
			// The kernel completes handshakes into the listen backlog
			// whether or not the daemon can accept them.
			conns, failed := openIdle(p.addr(), 200, 8, 5*time.Second)
			defer closeConns(conns)
			hitLimit := settle(5*time.Second, func() bool {
				out := p.out.String()
				return strings.Contains(out, "Too many open files") || strings.Contains(out, "too many open files")
			})
			exited := p.wait(2 * time.Second)
			status := p.status()
			closeConns(conns)
			start := time.Now()
			served := !exited && settle(10*time.Second, func() bool {
				n, err := (&client.Client{Addr: p.addr(), Timeout: time.Second}).Lookup(ctx, "keep0")
				return err == nil && n.Port == 7000
			})
			again := time.Since(start)
			lost := 0
			for _, r := range regs {
				select {
				case <-r.Done():
					lost++
				default:
				}
			}
			names, _ := namesOf(p.addr())
			serving := "not serving again"
			if served {
				serving = fmt.Sprintf("serving again %s after the connections closed", ms(again))
			}
			figure(t, "fdlimit/"+string(kind), "--nofile=64: %d of 200 connections opened (%d failed), accept failed with EMFILE: %v, daemon %s; %s; %d of 5 registrations lost, NAMES lists %d",
				len(conns), failed, hitLimit, status, serving, lost, len(names))
			if kind == gopmd {
				if !hitLimit {
					t.Errorf("gopmd never reported running out of descriptors:\n%s", p.out.String())
				}
				if exited {
					t.Fatalf("gopmd exited (%s) when out of descriptors", status)
				}
				if !served {
					t.Errorf("gopmd not serving 10 s after the connections closed")
				}
				if lost > 0 || len(names) != 5 {
					t.Errorf("%d registrations lost; NAMES lists %d of 5", lost, len(names))
				}
			}
		})
	}
}

const hostNetns = "host namespace, default tcp_wmem"

// tcpEstablished is Linux's TCP_ESTABLISHED state.
const tcpEstablished = 1

// tcpState returns the kernel's TCP state of c (the first byte of
// struct tcp_info), or -1.
func tcpState(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	state := -1
	raw.Control(func(fd uintptr) {
		var info [1]byte
		n := uint32(len(info))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == 0 {
			state = int(info[0])
		}
	})
	return state
}

// execLookPath is exec.LookPath, also looking in the sbin directories.
func execLookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"} {
		if st, err := os.Stat(dir + name); err == nil && !st.IsDir() {
			return dir + name, nil
		}
	}
	return "", errors.New(name + " not found")
}

// TestNamesReaderNeverReads: with 900 nodes registered (names of 254
// characters, mostly four-byte ones, so NAMES is about 920 KB), a client
// asks for NAMES with a small receive buffer and never reads the reply.
// Ours: others are served meanwhile, and a reply that cannot be written
// within the packet timeout is cut. Stock writes with blocking writes and
// no timeout: when the reply does not fit in the socket buffers, the whole
// daemon waits for that client (a figure).
//
// Linux grows a socket's send buffer up to net.ipv4.tcp_wmem's maximum (4
// MB by default), which swallows the largest reply stock can produce (its
// 1019 connections cap the registry), so the test runs in a network
// namespace of its own whose tcp_wmem maximum is 64 KB, like a host short
// of memory; without root it runs here, where nobody stalls.
func TestNamesReaderNeverReads(t *testing.T) {
	if runInNetns(t, "net.ipv4.tcp_wmem=4096 16384 65536") {
		return
	}
	where := hostNetns
	if ns := os.Getenv(inNetnsEnv); ns != "" {
		where = "namespace with " + ns
	}
	const nodes = 900
	const namesSize = 4 + nodes*(len("name ")+4+250*4+len(" at port 10000\n"))
	if !fdsAvailable(t, 2*nodes+200) {
		return
	}
	for _, kind := range []daemonKind{gopmd, stock} {
		t.Run(string(kind), func(t *testing.T) {
			p := startDaemon(t, kind, daemonPath(t, kind), nil, "-packet_timeout", "2")
			var regs []net.Conn
			defer func() { closeConns(regs) }()
			for i := 0; i < nodes; i++ {
				name := fmt.Sprintf("%04d", i) + strings.Repeat("\U0001F600", 250)
				c, err := rawRegister(p.addr(), node(name, uint16(10000+i)), 5*time.Second)
				if err != nil {
					t.Fatalf("register %d: %v", i, err)
				}
				regs = append(regs, c)
			}
			target := fmt.Sprintf("%04d", 7) + strings.Repeat("\U0001F600", 250)

			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			stalled, err := d.Dial("tcp", p.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer stalled.Close()
			req, _ := wire.EncodeRequest(&wire.NamesReq{})
			stalled.Write(req)
			sent := time.Now()
			time.Sleep(200 * time.Millisecond) // let the daemon start writing

			// Ours is given 10 s a look-up; stock 1 s, as it stalls.
			each := 10 * time.Second
			if kind == stock {
				each = time.Second
			}
			during := pacedLookups(p.addr(), target, 10007, 4, 200, 3*time.Second, each, time.Millisecond)
			// Read what the daemon sent, up to its close: for ours,
			// once it has cut the connection (at the packet timeout),
			// for stock after 3 s (it never cuts).
			if kind == gopmd && where != hostNetns {
				if !settle(15*time.Second, func() bool { return tcpState(stalled) != tcpEstablished }) {
					t.Errorf("the stalled NAMES connection is still established 15 s later")
				}
			}
			time.Sleep(time.Until(sent.Add(3 * time.Second)))
			stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, rerr := io.Copy(io.Discard, bufio.NewReader(stalled))
			fate := fmt.Sprintf("the stalled reader then got %d of %d bytes and ", got, namesSize)
			switch {
			case rerr == nil:
				fate += "end of stream"
			case errors.Is(rerr, syscall.ECONNRESET):
				fate += "a reset"
			default:
				fate += errKind(rerr)
			}
			after := pacedLookups(p.addr(), target, 10007, 4, 200, 10*time.Second, 10*time.Second, time.Millisecond)
			figure(t, "namesstall/"+string(kind), "%s: while a NAMES reader stalls: %s; %s; afterwards %s", where, during, fate, after)
			if kind == gopmd {
				if during.failed > 0 || during.ok == 0 || after.failed > 0 {
					t.Errorf("look-ups failed: while stalled %s; after %s", during, after)
				}
				// In the namespace the reply cannot be buffered whole:
				// it is cut, with a reset, so that the client cannot
				// take the truncated list for a complete one.
				if where != hostNetns && (got >= int64(namesSize) || !errors.Is(rerr, syscall.ECONNRESET)) {
					t.Errorf("stalled NAMES reader: got %d of %d bytes, then %v; want a truncated reply ended by a reset", got, namesSize, rerr)
				}
				if ne := (net.Error)(nil); errors.As(rerr, &ne) && ne.Timeout() {
					t.Errorf("the stalled NAMES connection was never closed by the daemon")
				}
			}
		})
	}
}

// fileLimit reads the "Max open files" soft and hard limits of process pid
// from /proc/PID/limits.
func fileLimit(t *testing.T, pid int) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "Max open files") && len(f) >= 5 {
			return f[3], f[4]
		}
	}
	t.Fatalf("no Max open files line in /proc/%d/limits", pid)
	return "", ""
}

// TestDaemonRaisesFileLimit: started with a soft file limit of 1024 and a
// hard one of 20000, our daemon runs with 19999: the Go runtime (since Go
// 1.19) raises the soft RLIMIT_NOFILE at start-up, to one below the hard
// limit (package syscall does so to notice a later prlimit by another
// process). Stock keeps 1024 (and FD_SETSIZE caps it at 1024 anyway).
func TestDaemonRaisesFileLimit(t *testing.T) {
	prlimit, err := execLookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found: " + err.Error())
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Max < 2048 {
		t.Skipf("needs a hard file limit above 2048, have %d (%v)", rl.Max, err)
	}
	hard := strconv.FormatUint(rl.Max, 10)
	for _, kind := range []daemonKind{gopmd, stock} {
		p := startDaemon(t, kind, daemonPath(t, kind), []string{prlimit, "--nofile=1024:" + hard, "--"})
		soft, h := fileLimit(t, p.pid())
		figure(t, "rlimit/"+string(kind), "started with 1024:%s, runs with %s:%s (/proc/PID/limits)", hard, soft, h)
		if n, _ := strconv.ParseUint(soft, 10, 64); kind == gopmd && n < rl.Max-1 {
			t.Errorf("gopmd runs with a soft file limit of %s, want the hard limit %s (or one less)", soft, hard)
		}
		if h != hard {
			t.Errorf("%s: hard limit %s, want %s", kind, h, hard)
		}
	}
}
