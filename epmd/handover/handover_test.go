//go:build linux

package handover_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopmd/gopmd/epmd/handover"
)

// unixPair returns the two ends of a connected Unix stream socket.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// identity is what makes two descriptors the same open file.
func identity(t *testing.T, f *os.File) [2]uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// TestSendReceive hands over a listening socket, 600 connected sockets
// (three batches) and a snapshot, and checks that the receiver's
// descriptors are the sender's sockets: the listener accepts, each
// connection still talks to its peer.
func TestSendReceive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	files := []handover.NamedFile{{Name: "listen:" + ln.Addr().String(), File: lf}}
	const conns = 600
	peers := make([]net.Conn, conns)
	for i := range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.(*net.TCPConn).File()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		peers[i] = c
		files = append(files, handover.NamedFile{Name: "conn:" + strconv.Itoa(i+1), File: f})
	}
	snap := bytes.Repeat([]byte("table"), 100000)

	a, b := unixPair(t)
	before := openFDs(t)
	sent := make(chan error, 1)
	go func() { sent <- handover.Send(a, files, snap) }()
	got, gotSnap, err := handover.Receive(b, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotSnap, snap) {
		t.Error("snapshot differs")
	}
	if len(got) != len(files) {
		t.Fatalf("%d files, want %d", len(got), len(files))
	}
	if n := openFDs(t) - before; n != len(files) {
		t.Errorf("%d new descriptors, want %d", n, len(files))
	}
	for i, f := range got {
		if f.Name != files[i].Name || f.File.Name() != files[i].Name {
			t.Errorf("file %d: name %q (%q), want %q", i, f.Name, f.File.Name(), files[i].Name)
		}
		if identity(t, f.File) != identity(t, files[i].File) {
			t.Errorf("file %d (%s) is not the same socket", i, f.Name)
		}
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.File.Fd(), syscall.F_GETFD, 0)
		if errno != 0 || flags&syscall.FD_CLOEXEC == 0 {
			t.Errorf("file %d not close-on-exec", i)
		}
	}
	// The received listener accepts; a received connection talks to its peer.
	rln, err := net.FileListener(got[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer rln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}()
	if c, err := rln.Accept(); err != nil {
		t.Errorf("the received listener: %v", err)
	} else {
		c.Close()
	}
	rc, err := net.FileConn(got[conns].File)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	peers[conns-1].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(peers[conns-1], buf); err != nil || string(buf) != "ping" {
		t.Errorf("the peer of the received connection read %q, %v", buf, err)
	}
	for _, f := range got {
		f.File.Close()
	}
}

// TestReceiveLimits: a stream over the receiver's limits is refused
// before any descriptor is taken.
func TestReceiveLimits(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	files := make([]handover.NamedFile, 300)
	for i := range files {
		files[i] = handover.NamedFile{Name: "p" + strconv.Itoa(i), File: r}
	}
	for _, tc := range []struct {
		name              string
		maxFiles, maxSnap int
	}{
		{"too many files", 299, 100},
		{"snapshot too big", 300, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := unixPair(t)
			before := openFDs(t)
			sent := make(chan struct{})
			go func() { handover.Send(a, files, make([]byte, 10)); close(sent) }()
			_, _, err := handover.Receive(b, tc.maxFiles, tc.maxSnap)
			if !errors.Is(err, handover.ErrProtocol) {
				t.Errorf("Receive: %v, want a protocol error", err)
			}
			if n := openFDs(t) - before; n != 0 {
				t.Errorf("%d descriptors left open", n)
			}
			b.Close() // what is still in flight is dropped with the socket
			<-sent
		})
	}
}

// TestReceiveCutShort: the sender goes away after its first batch of
// descriptors; Receive fails and closes the ones it got.
func TestReceiveCutShort(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	files := make([]handover.NamedFile, 300)
	for i := range files {
		files[i] = handover.NamedFile{Name: "p", File: r}
	}
	a, b := unixPair(t)
	sendCut(a, files)
	a.Close()
	before := openFDs(t)
	if _, _, err := handover.Receive(b, 1000, 100); err == nil {
		t.Fatal("a cut stream was accepted")
	}
	if n := openFDs(t) - before; n != 0 {
		t.Errorf("%d descriptors left open", n)
	}
}

// sendCut writes what Send would for files, but only the first batch of
// descriptors.
func sendCut(c *net.UnixConn, files []handover.NamedFile) {
	var names []byte
	for _, f := range files {
		names = append(names, 0, byte(len(f.Name)))
		names = append(names, f.Name...)
	}
	h := []byte("GOPMDHO1")
	h = append(h, 0, 0, byte(len(files)>>8), byte(len(files)), 0, 0, 0, 10, 0, 0, byte(len(names)>>8), byte(len(names)))
	c.Write(append(h, names...))
	fds := make([]int, handover.MaxBatch)
	for i := range fds {
		fds[i] = int(files[i].File.Fd())
	}
	c.WriteMsgUnix([]byte{'F'}, syscall.UnixRights(fds...), nil)
}

// TestStoreFDs plays systemd's side of the file descriptor store: a
// notification socket that receives "FDSTORE=1" messages with their
// descriptors.
func TestStoreFDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	snap := []byte("the table")
	mf, err := handover.MemFile("epmd-snapshot", snap)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	files := []handover.NamedFile{{Name: "snapshot", File: mf}, {Name: "listen-127.0.0.1", File: lf}}
	if err := handover.StoreFDs(path, files); err != nil {
		t.Fatal(err)
	}
	for _, want := range files {
		buf := make([]byte, 512)
		oob := make([]byte, syscall.CmsgSpace(4*4))
		ns.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, oobn, _, _, err := ns.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != "FDSTORE=1\nFDNAME="+want.Name {
			t.Errorf("message %q", got)
		}
		msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) != 1 {
			t.Fatalf("%d control messages", len(msgs))
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights %v, %v", fds, err)
		}
		f := os.NewFile(uintptr(fds[0]), want.Name)
		if identity(t, f) != identity(t, want.File) {
			t.Errorf("%s: not the same file", want.Name)
		}
		if want.Name == "snapshot" {
			b, err := io.ReadAll(f)
			if err != nil || !bytes.Equal(b, snap) {
				t.Errorf("stored snapshot %q, %v", b, err)
			}
			if _, err := f.Write([]byte("x")); err == nil {
				t.Error("the sealed snapshot took a write")
			}
		}
		f.Close()
	}
	for _, bad := range []string{"", "a:b", "tab\t", strings.Repeat("x", 256)} {
		if err := handover.StoreFDs(path, []handover.NamedFile{{Name: bad, File: lf}}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if err := handover.StoreFDs("", files); err == nil {
		t.Error("no notification socket: accepted")
	}
}
