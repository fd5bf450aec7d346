//go:build unix

package fuzz_test

import (
	"bytes"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/gopmd/gopmd/epmd/handover"
)

// FuzzHandoverReceive: any byte stream on the handover socket (without
// descriptors) is refused or read as what Send writes, never a panic, a
// hang past the stream's end, or a descriptor left open on an error; and
// whatever Receive accepts, Send writes back byte for byte.
func FuzzHandoverReceive(f *testing.F) {
	f.Add([]byte("GOPMDHO1\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00abc"))
	f.Add([]byte("GOPMDHO1\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x03abcF"))
	f.Add([]byte("GOPMDHO1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("NOTMAGIC"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		a, b := unixPair(t)
		defer a.Close()
		defer b.Close()
		go func() {
			a.Write(stream)
			a.CloseWrite()
		}()
		files, snap, err := handover.Receive(b, 8, 1<<16)
		if err != nil {
			if files != nil || snap != nil {
				t.Fatalf("error %v with results", err)
			}
			return
		}
		// No descriptors were sent, so only an empty set can succeed.
		if len(files) != 0 {
			t.Fatalf("%d files from a stream without descriptors", len(files))
		}
		c, d := unixPair(t)
		defer c.Close()
		defer d.Close()
		go func() {
			handover.Send(c, nil, snap)
			c.CloseWrite()
		}()
		var got []byte
		buf := make([]byte, 4096)
		for {
			n, err := d.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if want := stream[:len(got)]; len(got) > len(stream) || !bytes.Equal(got, want) {
			t.Fatalf("Receive accepted %q; Send writes %q", stream, got)
		}
	})
}

func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
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
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}
