package wire_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/wire"
)

// feed copies chunk into f.Next() and calls Advance, as one read() of stock
// epmd that returned len(chunk) bytes. The chunk must fit.
func feed(t fataler, f *wire.Framer, chunk []byte) ([]byte, error) {
	t.Helper()
	next := f.Next()
	if len(chunk) > len(next) {
		t.Fatalf("chunk of %d bytes does not fit Next() of %d", len(chunk), len(next))
	}
	copy(next, chunk)
	return f.Advance(len(chunk))
}

// fataler is what *testing.T and *rapid.T have in common here.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// wantFrameError checks err is a *wire.FrameError wrapping sentinel with
// the given Length and Got.
func wantFrameError(t *testing.T, err, sentinel error, length, got int) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	var fe *wire.FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %T, want *wire.FrameError", err)
	}
	if diff := cmp.Diff(wire.FrameError{Length: length, Got: got, Err: sentinel}, *fe, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("FrameError (-want +got):\n%s", diff)
	}
}

func frameOf(body []byte) []byte {
	return wire.AppendRawFrame(nil, uint16(len(body)), body)
}

func TestFramerFirstRead(t *testing.T) {
	var f wire.Framer
	// INBUF_SIZE - 1: one byte is kept for the NUL stock epmd writes.
	if n := len(f.Next()); n != 3059 {
		t.Errorf("first len(Next()) = %d, want 3059", n)
	}
	if n := f.Buffered(); n != 0 {
		t.Errorf("Buffered() = %d, want 0", n)
	}
}

func TestFramerBadLength(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		length int
	}{
		{"length 0", []byte{0x00, 0x00}, 0},
		{"length 0 with payload", []byte{0x00, 0x00, 'n'}, 0},
		{"length 3058", []byte{0x0b, 0xf2}, 3058},
		{"length 3058 with payload", append([]byte{0x0b, 0xf2}, bytes.Repeat([]byte("n"), 100)...), 3058},
		{"length 3059", []byte{0x0b, 0xf3}, 3059},
		{"length 65535", []byte{0xff, 0xff}, 65535},
		{"length 65535 with payload", append([]byte{0xff, 0xff}, bytes.Repeat([]byte("n"), 3057)...), 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f wire.Framer
			body, err := feed(t, &f, tt.in)
			if body != nil {
				t.Errorf("body = %q, want nil", body)
			}
			wantFrameError(t, err, wire.ErrFrameSize, tt.length, 0)
			if got, want := err.Error(), "epmd: invalid packet size ("; !strings.HasPrefix(got, want) {
				t.Errorf("Error() = %q, want prefix %q", got, want)
			}
			// A failed frame asks for nothing more and stays failed.
			if n := len(f.Next()); n != 0 {
				t.Errorf("len(Next()) after failure = %d, want 0", n)
			}
			body, err2 := f.Advance(0)
			if body != nil || !errors.Is(err2, wire.ErrFrameSize) {
				t.Errorf("Advance(0) after failure = %q, %v; want nil, ErrFrameSize", body, err2)
			}
		})
	}

	// Byte by byte: the error comes with the second header byte.
	var f wire.Framer
	if body, err := feed(t, &f, []byte{0x00}); body != nil || err != nil {
		t.Fatalf("first byte: %q, %v; want nil, nil", body, err)
	}
	_, err := feed(t, &f, []byte{0x00})
	wantFrameError(t, err, wire.ErrFrameSize, 0, 0)
}

func TestFramerMaxLength(t *testing.T) {
	body := append([]byte("n"), bytes.Repeat([]byte{0xff}, wire.MaxRequestLen-1)...)
	frame := frameOf(body)
	if len(frame) != 3059 || frame[0] != 0x0b || frame[1] != 0xf1 {
		t.Fatalf("frame: len %d header % x", len(frame), frame[:2])
	}
	var f wire.Framer
	got, err := feed(t, &f, frame) // fills the whole first read exactly
	if err != nil {
		t.Fatalf("Advance: %v", err)
	}
	if diff := cmp.Diff(body, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if n := len(f.Next()); n != 0 {
		t.Errorf("len(Next()) after a complete frame = %d, want 0", n)
	}
}

// TestFramerPartial: once the header is known, every read asks exactly for
// the bytes still missing.
func TestFramerPartial(t *testing.T) {
	body := []byte("zalpha")
	frame := frameOf(body)

	var f wire.Framer
	got, err := feed(t, &f, frame[:1]) // one byte: length still unknown
	if got != nil || err != nil {
		t.Fatalf("1 byte: %q, %v; want nil, nil", got, err)
	}
	if n := len(f.Next()); n != 3058 {
		t.Errorf("len(Next()) after 1 byte = %d, want 3058", n)
	}
	got, err = feed(t, &f, frame[1:2]) // header complete
	if got != nil || err != nil {
		t.Fatalf("header: %q, %v; want nil, nil", got, err)
	}
	if n := len(f.Next()); n != len(body) {
		t.Errorf("len(Next()) after header = %d, want %d", n, len(body))
	}
	got, err = feed(t, &f, frame[2:4]) // partial payload
	if got != nil || err != nil {
		t.Fatalf("partial: %q, %v; want nil, nil", got, err)
	}
	if n := len(f.Next()); n != len(body)-2 {
		t.Errorf("len(Next()) after partial = %d, want %d", n, len(body)-2)
	}
	got, err = f.Advance(0) // a read that returned nothing changes nothing
	if got != nil || err != nil {
		t.Fatalf("Advance(0): %q, %v; want nil, nil", got, err)
	}
	if n := f.Buffered(); n != 4 {
		t.Errorf("Buffered() = %d, want 4", n)
	}
	got, err = feed(t, &f, frame[4:])
	if err != nil {
		t.Fatalf("rest: %v", err)
	}
	if diff := cmp.Diff(body, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	// The frame is done: bytes sent after it are never asked for.
	if n := len(f.Next()); n != 0 {
		t.Errorf("len(Next()) after completion = %d, want 0", n)
	}
	if n := f.Buffered(); n != len(frame) {
		t.Errorf("Buffered() = %d, want %d", n, len(frame))
	}

	// Header and part of the payload in the first read.
	var g wire.Framer
	got, err = feed(t, &g, frame[:5])
	if got != nil || err != nil {
		t.Fatalf("header+3: %q, %v; want nil, nil", got, err)
	}
	if n := len(g.Next()); n != len(frame)-5 {
		t.Errorf("len(Next()) = %d, want %d", n, len(frame)-5)
	}
}

// TestFramerTrailingData: more bytes in the read that completes the header
// than the frame declares: stock drops the request unexecuted.
func TestFramerTrailingData(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		length int
		got    int
	}{
		{"names plus names", cat(frameOf([]byte("n")), frameOf([]byte("n"))), 1, 4},
		{"names plus one byte", cat(frameOf([]byte("n")), []byte{0}), 1, 2},
		{"alive2 plus frame", cat(frameOf(alive2Body(5, "alpha", 0, "")), frameOf([]byte("n"))), 18, 21},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f wire.Framer
			body, err := feed(t, &f, tt.in)
			if body != nil {
				t.Errorf("body = %q, want nil", body)
			}
			wantFrameError(t, err, wire.ErrTrailingData, tt.length, tt.got)
			if n := len(f.Next()); n != 0 {
				t.Errorf("len(Next()) after failure = %d, want 0", n)
			}
			if body, err := f.Advance(0); body != nil || !errors.Is(err, wire.ErrTrailingData) {
				t.Errorf("Advance(0) after failure = %q, %v; want nil, ErrTrailingData", body, err)
			}
		})
	}

	var f wire.Framer
	_, err := feed(t, &f, []byte{0x00, 0x01, 'n', 'n'})
	if got, want := err.Error(), "epmd: got 2 bytes in packet, expected 1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestFramerTrailingLater: once the header is in, the trailing-data check
// cannot fire any more, because reads are capped at the missing bytes.
func TestFramerTrailingLater(t *testing.T) {
	var f wire.Framer
	if _, err := feed(t, &f, []byte{0x00, 0x01}); err != nil {
		t.Fatal(err)
	}
	body, err := feed(t, &f, []byte("n"))
	if err != nil || string(body) != "n" {
		t.Fatalf("body = %q, %v; want \"n\", nil", body, err)
	}
	if n := len(f.Next()); n != 0 {
		t.Errorf("len(Next()) = %d, want 0", n)
	}
	// Advance after completion returns the same frame again.
	body, err = f.Advance(0)
	if err != nil || string(body) != "n" {
		t.Errorf("Advance(0) after completion = %q, %v; want \"n\", nil", body, err)
	}
}

func TestFramerReset(t *testing.T) {
	var f wire.Framer
	if _, err := feed(t, &f, frameOf([]byte("zalpha"))); err != nil {
		t.Fatal(err)
	}
	f.Reset()
	if n, b := len(f.Next()), f.Buffered(); n != 3059 || b != 0 {
		t.Errorf("after Reset: len(Next()) = %d, Buffered() = %d; want 3059, 0", n, b)
	}
	body, err := feed(t, &f, frameOf([]byte("k")))
	if err != nil || string(body) != "k" {
		t.Errorf("second frame = %q, %v; want \"k\", nil", body, err)
	}

	// Reset also clears a failure.
	f.Reset()
	if _, err := feed(t, &f, []byte{0, 0}); !errors.Is(err, wire.ErrFrameSize) {
		t.Fatalf("err = %v, want ErrFrameSize", err)
	}
	f.Reset()
	body, err = feed(t, &f, frameOf([]byte("d")))
	if err != nil || string(body) != "d" {
		t.Errorf("frame after failure and Reset = %q, %v; want \"d\", nil", body, err)
	}
}

func TestFramerAdvancePanics(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup []byte
		n     int
	}{
		{"negative", nil, -1},
		{"beyond first read", nil, 3060},
		{"beyond missing bytes", []byte{0x00, 0x02}, 3},
		{"after completion", []byte{0x00, 0x01, 'n'}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var f wire.Framer
			if tt.setup != nil {
				if _, err := feed(t, &f, tt.setup); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				if recover() == nil {
					t.Errorf("Advance(%d) did not panic", tt.n)
				}
			}()
			f.Advance(tt.n)
		})
	}
}

func TestReadRequest(t *testing.T) {
	body := alive2Body(5, "alpha", 0, "")
	frame := frameOf(body)
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(frame)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(frame))},
		{"half", iotest.HalfReader(bytes.NewReader(frame))},
		{"EOF with last data", iotest.DataErrReader(bytes.NewReader(frame))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.ReadRequest(tt.r)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if diff := cmp.Diff(body, got); diff != "" {
				t.Errorf("ReadRequest (-want +got):\n%s", diff)
			}
		})
	}

	// Bytes after the frame: read one at a time they are never consumed;
	// arriving in the same read as the header they spoil the frame.
	r := bytes.NewReader(cat(frame, []byte("nn")))
	got, err := wire.ReadRequest(iotest.OneByteReader(r))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ReadRequest(one byte at a time, trailing) = %q, %v", got, err)
	}
	if r.Len() != 2 {
		t.Errorf("ReadRequest consumed trailing bytes: %d left, want 2", r.Len())
	}
	got, err = wire.ReadRequest(bytes.NewReader(cat(frame, []byte("nn"))))
	if got != nil {
		t.Errorf("ReadRequest(trailing in one read) = %q, want nil", got)
	}
	wantFrameError(t, err, wire.ErrTrailingData, len(body), len(body)+2)

	// The returned body is a copy, not the Framer's buffer.
	got1, _ := wire.ReadRequest(bytes.NewReader(frameOf([]byte("n"))))
	if cap(got1) > 64 {
		t.Errorf("ReadRequest returned a slice of cap %d, want a small copy", cap(got1))
	}
}

func TestReadRequestErrors(t *testing.T) {
	frame := frameOf([]byte("zalpha"))
	errRead := errors.New("read failed")
	tests := []struct {
		name string
		r    io.Reader
		want error
	}{
		{"EOF at start", bytes.NewReader(nil), io.EOF},
		{"EOF after one byte", bytes.NewReader(frame[:1]), io.ErrUnexpectedEOF},
		{"EOF after header", bytes.NewReader(frame[:2]), io.ErrUnexpectedEOF},
		{"EOF mid-frame", bytes.NewReader(frame[:5]), io.ErrUnexpectedEOF},
		{"EOF mid-frame one byte at a time", iotest.OneByteReader(bytes.NewReader(frame[:5])), io.ErrUnexpectedEOF},
		{"read error at start", iotest.ErrReader(errRead), errRead},
		{"read error mid-frame", io.MultiReader(bytes.NewReader(frame[:3]), iotest.ErrReader(errRead)), errRead},
		{"length 0", bytes.NewReader([]byte{0, 0}), wire.ErrFrameSize},
		{"length 65535", bytes.NewReader([]byte{0xff, 0xff, 'n'}), wire.ErrFrameSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.ReadRequest(tt.r)
			if got != nil || !errors.Is(err, tt.want) {
				t.Errorf("ReadRequest = %q, %v; want nil, %v", got, err, tt.want)
			}
			if tt.want == io.EOF && err != io.EOF {
				t.Errorf("err = %#v, want io.EOF itself", err)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	got, err := wire.AppendFrame([]byte("p"), []byte("n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]byte{'p', 0x00, 0x01, 'n'}, got); diff != "" {
		t.Errorf("AppendFrame (-want +got):\n%s", diff)
	}
	max := bytes.Repeat([]byte("n"), wire.MaxRequestLen)
	got, err = wire.AppendFrame(nil, max)
	if err != nil || len(got) != 3059 || got[0] != 0x0b || got[1] != 0xf1 {
		t.Errorf("AppendFrame(3057 bytes) = len %d, %v", len(got), err)
	}

	for _, n := range []int{0, wire.MaxRequestLen + 1, 65535, 70000} {
		got, err := wire.AppendFrame([]byte("keep"), make([]byte, n))
		wantFrameError(t, err, wire.ErrFrameSize, n, 0)
		if string(got) != "keep" {
			t.Errorf("AppendFrame(%d bytes) changed b to %q", n, got)
		}
	}
}

func TestAppendRawFrame(t *testing.T) {
	got := wire.AppendRawFrame([]byte("p"), 0xffff, []byte("n"))
	if diff := cmp.Diff([]byte{'p', 0xff, 0xff, 'n'}, got); diff != "" {
		t.Errorf("AppendRawFrame (-want +got):\n%s", diff)
	}
	got = wire.AppendRawFrame(nil, 0, nil)
	if diff := cmp.Diff([]byte{0, 0}, got); diff != "" {
		t.Errorf("AppendRawFrame (-want +got):\n%s", diff)
	}
}

// TestFramerChunksProperty: however a valid frame is split into reads, the
// result is the same as reading it whole.
func TestFramerChunksProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, wire.MaxRequestLen).Draw(t, "len")
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(i*7 + n)
		}
		body[0] = rapid.Byte().Draw(t, "tag")
		frame := frameOf(body)

		var whole wire.Framer
		want, err := feed(t, &whole, frame)
		if err != nil {
			t.Fatalf("whole: %v", err)
		}

		var f wire.Framer
		rest := frame
		for {
			next := len(f.Next())
			if next == 0 {
				t.Fatalf("Next() empty with %d bytes left", len(rest))
			}
			k := rapid.IntRange(1, min(next, len(rest))).Draw(t, "chunk")
			got, err := feed(t, &f, rest[:k])
			rest = rest[k:]
			if err != nil {
				t.Fatalf("after chunk of %d: %v", k, err)
			}
			if got != nil {
				if len(rest) != 0 {
					t.Fatalf("frame complete with %d bytes left", len(rest))
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("body (-want +got):\n%s", diff)
				}
				if len(f.Next()) != 0 {
					t.Fatalf("Next() not empty after completion")
				}
				return
			}
			if f.Buffered() >= 2 && len(f.Next()) != len(rest) {
				t.Fatalf("len(Next()) = %d with header known, want the %d missing bytes", len(f.Next()), len(rest))
			}
			if len(rest) == 0 {
				t.Fatalf("all bytes fed, frame not complete")
			}
		}
	})
}

// TestReadRequestChunksProperty: ReadRequest over a reader that returns
// random short reads gives the body.
func TestReadRequestChunksProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		body := rapid.SliceOfN(rapid.Byte(), 1, 200).Draw(t, "body")
		r := &chunkReader{t: t, data: frameOf(body)}
		got, err := wire.ReadRequest(r)
		if err != nil {
			t.Fatalf("ReadRequest: %v", err)
		}
		if diff := cmp.Diff(body, got); diff != "" {
			t.Fatalf("body (-want +got):\n%s", diff)
		}
	})
}

type chunkReader struct {
	t    *rapid.T
	data []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := rapid.IntRange(1, min(len(p), len(r.data))).Draw(r.t, "read")
	n := copy(p, r.data[:k])
	r.data = r.data[n:]
	return n, nil
}
