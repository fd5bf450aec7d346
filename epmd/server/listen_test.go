package server_test

import (
	"errors"
	"github.com/gopmd/gopmd/epmd/internal/testenv"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopmd/gopmd/epmd/server"
)

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		list    string
		want    []netip.Addr // nil: no list
		wantErr string
	}{
		{list: "", want: nil},
		{list: " ", want: nil},
		{list: ", ,,  ,", want: nil},
		{list: "127.0.0.1", want: addrs("127.0.0.1")},
		{list: "::1,127.0.0.1", want: addrs("::1", "127.0.0.1")},
		{list: "0:0:0:0:0:0:0:1", want: addrs("::1")},
		{list: "0.0.0.0", want: addrs("0.0.0.0")},
		{list: "::", want: addrs("::")},
		{list: "127.0.0.2", want: addrs("127.0.0.2")},
		{list: "::ffff:127.0.0.1", want: addrs("::ffff:127.0.0.1")}, // not loopback for stock
		{list: " 10.0.0.1,, ::2 ,fe80::1 ,", want: addrs("10.0.0.1", "::2", "fe80::1")},
		{list: "10.0.0.1,10.0.0.1", want: addrs("10.0.0.1", "10.0.0.1")},
		{list: "1.2.3.4,127.0.0.1,::1,5.6.7.8", want: addrs("1.2.3.4", "127.0.0.1", "::1", "5.6.7.8")},
		{list: "::FFFF:1.2.3.4", want: addrs("::ffff:1.2.3.4")},
		{list: "localhost", wantErr: `cannot parse IP address "localhost"`},
		{list: "127.0.0.1,localhost", wantErr: `cannot parse IP address "localhost"`},
		{list: "fe80::1%lo", wantErr: `cannot parse IP address "fe80::1%lo"`},
		{list: "01.2.3.4", wantErr: `cannot parse IP address "01.2.3.4"`},
		{list: "1.2.3", wantErr: `cannot parse IP address "1.2.3"`},
		{list: "1.2.3.4\t", wantErr: "cannot parse IP address \"1.2.3.4\t\""},
		{list: "1.2.3.4;5.6.7.8", wantErr: `cannot parse IP address "1.2.3.4;5.6.7.8"`},
		{list: "[::1]", wantErr: `cannot parse IP address "[::1]"`},
		{list: "a,b", wantErr: `cannot parse IP address "a"`},
	}
	for _, tt := range tests {
		got, err := server.ParseAddresses(tt.list)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseAddresses(%q) error = %v, want %q", tt.list, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAddresses(%q): %v", tt.list, err)
			continue
		}
		if (got == nil) != (tt.want == nil) || !equalAddrs(got, tt.want) {
			t.Errorf("ParseAddresses(%q) = %#v, want %#v", tt.list, got, tt.want)
		}
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseAddressesLimit(t *testing.T) {
	many := func(n int) []string {
		var ss []string
		for i := range n {
			ss = append(ss, "10.0.0."+strconv.Itoa(i+1))
		}
		return ss
	}
	// OTP 29's limit and wording (OTP 25 and 27: 13 non-loopback
	// addresses, "more than 16").
	const tooMany = "cannot listen on more than 14 IP addresses"

	got, err := server.ParseAddresses(strings.Join(many(13), ","))
	if err != nil || len(got) != 13 {
		t.Fatalf("13 addresses: got %d, %v", len(got), err)
	}
	if _, err := server.ParseAddresses(strings.Join(many(14), ",")); err == nil || err.Error() != tooMany {
		t.Fatalf("14 addresses: error %v, want %q", err, tooMany)
	}
	// Loopback addresses count like any other.
	got, err = server.ParseAddresses("127.0.0.1," + strings.Join(many(12), ","))
	if err != nil || len(got) != 13 {
		t.Fatalf("12 addresses + 127.0.0.1: got %d, %v", len(got), err)
	}
	if _, err := server.ParseAddresses("127.0.0.1," + strings.Join(many(12), ",") + ",::1"); err == nil || err.Error() != tooMany {
		t.Fatalf("12 addresses + both loopback: error %v, want %q", err, tooMany)
	}
	// Stock checks token by token: the count fails before a later bad token...
	if _, err := server.ParseAddresses(strings.Join(many(14), ",") + ",bad"); err == nil || err.Error() != tooMany {
		t.Fatalf("14 addresses then bad: error %v, want %q", err, tooMany)
	}
	// ...and a bad token fails before the count is reached.
	if _, err := server.ParseAddresses(strings.Join(many(13), ",") + ",bad,10.0.1.1"); err == nil ||
		err.Error() != `cannot parse IP address "bad"` {
		t.Fatalf("13 addresses then bad: error %v", err)
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 (and, when the
// host has IPv6, on ::1) a moment ago.

// listenFree calls Listen on a free port, trying another one if some other
// process takes the port in between.
func listenFree(t *testing.T, as []netip.Addr, offset int) ([]net.Listener, int) {
	t.Helper()
	for range 5 {
		port := testenv.FreePort(t)
		lns, err := server.Listen(as, port+offset)
		if err == nil {
			return lns, port
		}
		if !errors.Is(err, server.ErrAddrInUse) {
			t.Fatal(err)
		}
	}
	t.Fatal("no free port")
	return nil, 0
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func listenAddrs(lns []net.Listener) []string {
	var out []string
	for _, ln := range lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

func TestListenOrder(t *testing.T) {
	lns, port := listenFree(t, addrs("127.0.0.3", "127.0.0.2"), 0)
	defer closeAll(lns)
	p := strconv.Itoa(port)
	// The list in order, then the loopback addresses (OTP 29's order).
	want := []string{"127.0.0.3:" + p, "127.0.0.2:" + p, "127.0.0.1:" + p}
	if testenv.HasIPv6() {
		want = append(want, "[::1]:"+p)
	}
	if got := listenAddrs(lns); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("listeners %v, want %v", got, want)
	}
	// The sockets accept.
	for _, ln := range lns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("dial %v: %v", ln.Addr(), err)
		}
		c.Close()
	}
}

func TestListenEmptyListMeansLoopbackOnly(t *testing.T) {
	lns, port := listenFree(t, addrs(), 0)
	defer closeAll(lns)
	want := 1
	if testenv.HasIPv6() {
		want = 2
	}
	if len(lns) != want || lns[0].Addr().String() != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("listeners %v", listenAddrs(lns))
	}
}

func TestListenPortModulo(t *testing.T) {
	lns, port := listenFree(t, addrs(), 65536)
	defer closeAll(lns)
	if got := lns[0].Addr().(*net.TCPAddr).Port; got != port {
		t.Fatalf("listening on port %d, want %d", got, port)
	}
}

func TestListenDuplicateAddress(t *testing.T) {
	port := testenv.FreePort(t)
	lns, err := server.Listen(addrs("127.0.0.2", "127.0.0.2"), port)
	if err == nil {
		closeAll(lns)
		t.Fatal("duplicate address: no error")
	}
	if !errors.Is(err, server.ErrAddrInUse) {
		t.Fatalf("duplicate address: %v, want ErrAddrInUse", err)
	}
	var be *server.BindError
	if !errors.As(err, &be) || be.Addr != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("error %#v does not name 127.0.0.2", err)
	}
	if lns != nil {
		t.Fatalf("listeners returned with an error: %v", listenAddrs(lns))
	}
	// Everything opened before the failure was closed again.
	lns, err = server.Listen(addrs("127.0.0.2"), port)
	if err != nil {
		t.Fatalf("port not released after a failed Listen: %v", err)
	}
	closeAll(lns)
}

func TestListenPortInUse(t *testing.T) {
	port := testenv.FreePort(t)
	for _, busy := range []string{"127.0.0.1", "127.0.0.2"} {
		t.Run(busy, func(t *testing.T) {
			other, err := net.Listen("tcp4", net.JoinHostPort(busy, strconv.Itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			lns, err := server.Listen(addrs("127.0.0.2"), port)
			if err == nil {
				closeAll(lns)
				t.Fatal("no error")
			}
			if !errors.Is(err, server.ErrAddrInUse) {
				t.Fatalf("%v, want ErrAddrInUse", err)
			}
			want := "failed to bind on ipaddr " + busy + ": Address already in use"
			if err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
		})
	}
}

func TestListenBindFailureFatal(t *testing.T) {
	// A listed address that cannot be bound is fatal, with stock's text.
	// (An IPv4-mapped address cannot be bound by an IPv6-only socket.)
	if !testenv.HasIPv6() {
		t.Skip("no IPv6")
	}
	port := testenv.FreePort(t)
	lns, err := server.Listen(addrs("::ffff:127.0.0.1"), port)
	if err == nil {
		closeAll(lns)
		t.Fatal("no error")
	}
	if errors.Is(err, server.ErrAddrInUse) {
		t.Fatalf("%v matches ErrAddrInUse", err)
	}
	const want = "failed to bind on ipaddr ::ffff:127.0.0.1: Invalid argument"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// The loopback sockets opened first were closed.
	lns, err = server.Listen(addrs(), port)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	closeAll(lns)
}

func TestStrerror(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{syscall.EADDRNOTAVAIL, "Cannot assign requested address"},
		{syscall.EINVAL, "Invalid argument"},
		{&net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, "Address already in use"},
	} {
		if got := server.Strerror(tt.err); got != tt.want {
			t.Errorf("Strerror(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestListenLoopbackCovered: the loopback address of a family is added
// only when the list has neither it nor that family's wildcard, as OTP
// 29's epmd does: -address 0.0.0.0 listens on 0.0.0.0 and [::1], and
// -address :: on [::] and 127.0.0.1. Only loopback addresses are dialled.
func TestListenLoopbackCovered(t *testing.T) {
	for _, tc := range []struct {
		list []string
		want []string // "ADDR", the port left out; IPv6 ones only with IPv6
	}{
		{[]string{"0.0.0.0"}, []string{"0.0.0.0", "[::1]"}},
		{[]string{"::"}, []string{"[::]", "127.0.0.1"}},
		{[]string{"0.0.0.0", "::"}, []string{"0.0.0.0", "[::]"}},
		{[]string{"::1"}, []string{"[::1]", "127.0.0.1"}},
		{[]string{"127.0.0.1", "::1"}, []string{"127.0.0.1", "[::1]"}},
		{[]string{"::1", "127.0.0.2"}, []string{"[::1]", "127.0.0.2", "127.0.0.1"}},
	} {
		t.Run(strings.Join(tc.list, ","), func(t *testing.T) {
			v6 := testenv.HasIPv6()
			if !v6 && slices.ContainsFunc(tc.list, func(s string) bool { return strings.Contains(s, ":") }) {
				t.Skip("no IPv6 on this host")
			}
			lns, port := listenFree(t, addrs(tc.list...), 0)
			defer closeAll(lns)
			var want []string
			for _, a := range tc.want {
				if v6 || !strings.HasPrefix(a, "[") {
					want = append(want, a+":"+strconv.Itoa(port))
				}
			}
			if got := listenAddrs(lns); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("listeners %v, want %v", got, want)
			}
			for _, lo := range []string{"127.0.0.1", "[::1]"} {
				if lo == "[::1]" && !v6 {
					continue
				}
				c, err := net.Dial("tcp", lo+":"+strconv.Itoa(port))
				if err != nil {
					t.Fatalf("dial %s: %v", lo, err)
				}
				c.Close()
			}
		})
	}
}

// TestListenWildcardAfterLoopback: a list naming 127.0.0.1 before 0.0.0.0
// binds 127.0.0.1 first, and 0.0.0.0 then fails with EADDRINUSE, as in
// OTP 29 (where the daemon takes it for another epmd and exits 0).
func TestListenWildcardAfterLoopback(t *testing.T) {
	for range 5 {
		port := testenv.FreePort(t)
		lns, err := server.Listen(addrs("127.0.0.1", "0.0.0.0"), port)
		if err == nil {
			closeAll(lns)
			t.Fatalf("listened on %v", listenAddrs(lns))
		}
		var be *server.BindError
		if errors.As(err, &be) && be.Addr == loopback4 {
			continue // another process took the port meanwhile
		}
		if !errors.Is(err, server.ErrAddrInUse) || be == nil || be.Addr != netip.IPv4Unspecified() {
			t.Fatalf("error %v, want EADDRINUSE on 0.0.0.0", err)
		}
		return
	}
	t.Fatal("no free port")
}

var loopback4 = netip.MustParseAddr("127.0.0.1")
