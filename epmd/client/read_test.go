package client

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/gopmd/gopmd/epmd/wire"
)

// appendAll reads to EOF whatever way the reader hands out the bytes, and
// enforces the limit exactly.
func TestAppendAll(t *testing.T) {
	data := make([]byte, 3*minReadBuf+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	readers := map[string]func([]byte) io.Reader{
		"plain":        func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte":     func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":         func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"data and EOF": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for rname, mk := range readers {
		for _, n := range []int{1, 4, minReadBuf - 1, minReadBuf, minReadBuf + 1, len(data)} {
			for _, limit := range []int{n - 1, n, n + 1, MaxReplySize} {
				if limit < 1 {
					continue
				}
				for _, dst := range [][]byte{nil, []byte("ab"), make([]byte, 1, n+2)} {
					orig := append([]byte(nil), dst...)
					got, err := appendAll(dst, mk(data[:n]), limit, "test")
					if n > limit {
						if !errors.Is(err, wire.ErrTooLarge) || !bytes.Equal(got, orig) {
							t.Errorf("%s: %d bytes, limit %d: got %d bytes, %v; want the buffer unchanged and ErrTooLarge", rname, n, limit, len(got), err)
						}
						continue
					}
					if err != nil || !bytes.Equal(got, append(orig, data[:n]...)) {
						t.Errorf("%s: %d bytes, limit %d, dst %d/%d: got %d bytes, %v", rname, n, limit, len(dst), cap(dst), len(got), err)
					}
				}
			}
		}
	}
}

func TestAppendAllErrors(t *testing.T) {
	// Nothing before EOF.
	dst := []byte("ab")
	got, err := appendAll(dst, bytes.NewReader(nil), 10, "test")
	if !errors.Is(err, ErrClosed) || string(got) != "ab" {
		t.Errorf("empty: %q, %v; want \"ab\", ErrClosed", got, err)
	}
	// A reset before anything came is ErrClosed; after some bytes it is
	// the error itself, with the bytes.
	reset := &net0Error{syscall.ECONNRESET}
	got, err = appendAll(dst, iotest.ErrReader(reset), 10, "test")
	if !errors.Is(err, ErrClosed) || !errors.Is(err, syscall.ECONNRESET) || string(got) != "ab" {
		t.Errorf("reset: %q, %v", got, err)
	}
	got, err = appendAll(dst, io.MultiReader(bytes.NewReader([]byte("xyz")), iotest.ErrReader(reset)), 10, "test")
	if errors.Is(err, ErrClosed) || !errors.Is(err, syscall.ECONNRESET) || string(got) != "abxyz" {
		t.Errorf("reset after bytes: %q, %v", got, err)
	}
	// Any other error comes with the bytes read.
	boom := errors.New("boom")
	got, err = appendAll(nil, io.MultiReader(bytes.NewReader([]byte("xyz")), iotest.ErrReader(boom)), 10, "test")
	if err != boom || string(got) != "xyz" {
		t.Errorf("error: %q, %v", got, err)
	}
}

type net0Error struct{ err error }

func (e *net0Error) Error() string { return "read: " + e.err.Error() }
func (e *net0Error) Unwrap() error { return e.err }

// With room in the buffer, reading allocates nothing.
func TestAppendAllReuses(t *testing.T) {
	data := bytes.Repeat([]byte("name x at port 1\n"), 2000)
	buf := make([]byte, 0, len(data)+1)
	r := bytes.NewReader(data)
	if n := testing.AllocsPerRun(10, func() {
		r.Reset(data)
		var err error
		buf, err = appendAll(buf[:0], r, MaxReplySize, "test")
		if err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per read, want 0", n)
	}
	if !bytes.Equal(buf, data) {
		t.Error("wrong bytes")
	}
}
