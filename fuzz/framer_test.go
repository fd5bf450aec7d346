package fuzz_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/gopmd/gopmd/epmd/wire"
)

// FuzzFramerSplit feeds the bytes a client sent to a wire.Framer twice: in
// one largest-possible read (the whole-buffer parse: each read takes all
// the bytes Next() has room for), and in chunks whose sizes come from the
// fuzz input, each no larger than Next(), as socket reads would return
// them. nats-server's FuzzParser splits its input the same way.
//
// The relation checked follows stock epmd's read loop (facts §2.2), where
// the header's checks run on the read that completes the header:
//
//   - whole gives frame F         => every split gives F;
//   - whole gives ErrFrameSize    => every split gives ErrFrameSize;
//   - whole gives ErrTrailingData => a split gives ErrTrailingData, or, when
//     the header was complete before the extra bytes were read, the frame
//     that is a prefix of the input (data[2:Length+2]);
//   - whole needs more bytes      => so does every split, having buffered
//     the whole input.
//
// In every case the bytes consumed are what stock would have read: exactly
// Length+2 for a frame, everything for an incomplete one. wire.ReadRequest
// over an io.Reader that returns the same chunks (then io.EOF, optionally
// together with the last chunk) must give the split's outcome, with
// io.ErrUnexpectedEOF (io.EOF when there were no bytes) for an incomplete
// frame.
//
// A split byte s is a read of s bytes (0 is a read that returns nothing),
// except 255, which reads as much as Next() allows; reads past the last
// split byte are largest-possible.
func FuzzFramerSplit(f *testing.F) {
	for i, b := range frameSeeds() {
		f.Add(b, []byte{1, 1, 255}, i%2 == 0)
		f.Add(b, []byte{byte(i % 7), 3, 0, 2}, i%2 == 1)
	}
	f.Fuzz(func(t *testing.T, data, splits []byte, eofWithData bool) {
		var fr wire.Framer
		whole := feedFramer(&fr, data, nil)
		checkOutcome(t, "whole", data, whole)
		fr.Reset()
		split := feedFramer(&fr, data, splits)
		checkOutcome(t, "split", data, split)

		switch {
		case whole.frame != nil:
			if split.frame == nil || !bytes.Equal(split.frame, whole.frame) {
				t.Fatalf("whole buffer gives frame %q, split %v gives %s", whole.frame, splits, split)
			}
		case errors.Is(whole.err, wire.ErrFrameSize):
			if !errors.Is(split.err, wire.ErrFrameSize) {
				t.Fatalf("whole buffer gives %v, split %v gives %s", whole.err, splits, split)
			}
		case errors.Is(whole.err, wire.ErrTrailingData):
			want := frameLen(data)
			switch {
			case errors.Is(split.err, wire.ErrTrailingData):
			case split.frame != nil && bytes.Equal(split.frame, data[2:want]):
			default:
				t.Fatalf("whole buffer gives %v, split %v gives %s; want the same error or frame %q",
					whole.err, splits, split, data[2:want])
			}
		case whole.err != nil:
			t.Fatalf("whole buffer gives unexpected error %v", whole.err)
		default: // incomplete
			if split.frame != nil || split.err != nil {
				t.Fatalf("whole buffer needs more bytes, split %v gives %s", splits, split)
			}
		}

		got, err := wire.ReadRequest(&chunkReader{data: data, splits: splits, eofWithData: eofWithData})
		switch {
		case split.frame != nil:
			if err != nil || !bytes.Equal(got, split.frame) {
				t.Fatalf("ReadRequest = %q, %v; split Framer gives frame %q", got, err, split.frame)
			}
		case split.err != nil:
			if got != nil || !sameSentinel(err, split.err) {
				t.Fatalf("ReadRequest = %q, %v; split Framer gives %v", got, err, split.err)
			}
		default:
			want := io.ErrUnexpectedEOF
			if len(data) == 0 {
				want = io.EOF
			}
			if got != nil || err != want {
				t.Fatalf("ReadRequest = %q, %v; want %v", got, err, want)
			}
		}
	})
}

// outcome is what a Framer made of some bytes.
type outcome struct {
	frame    []byte // a copy of the completed frame's payload
	err      error  // the Framer's error
	consumed int    // bytes handed to Advance
	buffered int    // Framer.Buffered() at the end
}

func (o outcome) String() string {
	switch {
	case o.frame != nil:
		return "frame " + string(quoteBytes(o.frame))
	case o.err != nil:
		return "error " + o.err.Error()
	}
	return "incomplete"
}

func quoteBytes(b []byte) []byte {
	if len(b) > 64 {
		return append(quoteBytes(b[:64]), "..."...)
	}
	return []byte(`"` + string(bytes.ToValidUTF8(b, []byte("?"))) + `"`)
}

// readSize returns the size of read number i, given the room the reader
// has (len(Next()) capped by the bytes left): split byte i, or all the
// room when there is no split byte i or it is 255.
func readSize(splits []byte, i, room int) int {
	if i >= len(splits) || splits[i] == 255 {
		return room
	}
	return min(int(splits[i]), room)
}

// feedFramer reads data into fr in reads sized by splits (nil: every read
// as large as possible) until a frame, an error, or the end of data.
func feedFramer(fr *wire.Framer, data, splits []byte) outcome {
	var o outcome
	for i := 0; ; i++ {
		next := fr.Next()
		room := min(len(next), len(data)-o.consumed)
		if room == 0 && i >= len(splits) {
			break // end of data: the peer closed
		}
		n := readSize(splits, i, room)
		copy(next, data[o.consumed:o.consumed+n])
		o.consumed += n
		body, err := fr.Advance(n)
		if err != nil {
			o.err = err
			break
		}
		if body != nil {
			o.frame = append([]byte{}, body...)
			break
		}
	}
	o.buffered = fr.Buffered()
	return o
}

// frameLen returns Length+2 from data's header.
func frameLen(data []byte) int { return int(data[0])<<8 | int(data[1]) + 2 }

// checkOutcome checks one outcome on its own: the bytes consumed are those
// stock epmd would have read, and errors are well formed.
func checkOutcome(t *testing.T, what string, data []byte, o outcome) {
	t.Helper()
	if o.buffered != o.consumed {
		t.Fatalf("%s: Buffered() = %d after %d bytes", what, o.buffered, o.consumed)
	}
	switch {
	case o.frame != nil:
		want := frameLen(data)
		if o.consumed != want || !bytes.Equal(o.frame, data[2:want]) {
			t.Fatalf("%s: frame %q after consuming %d bytes; want %q after %d", what, o.frame, o.consumed, data[2:want], want)
		}
		if n := len(o.frame); n < 1 || n > wire.MaxRequestLen {
			t.Fatalf("%s: frame of %d bytes", what, n)
		}
	case o.err != nil:
		var fe *wire.FrameError
		if !errors.As(o.err, &fe) || o.consumed < 2 || o.consumed > 3059 {
			t.Fatalf("%s: error %v (%T) after %d bytes", what, o.err, o.err, o.consumed)
		}
		want := frameLen(data)
		if fe.Length != want-2 {
			t.Fatalf("%s: %v reports Length %d, header says %d", what, o.err, fe.Length, want-2)
		}
		switch {
		case errors.Is(o.err, wire.ErrFrameSize):
			if fe.Length != 0 && fe.Length <= wire.MaxRequestLen {
				t.Fatalf("%s: %v for an acceptable Length", what, o.err)
			}
		case errors.Is(o.err, wire.ErrTrailingData):
			if o.consumed <= want || fe.Got != o.consumed-2 {
				t.Fatalf("%s: %v (Got %d) after %d bytes of a %d-byte frame", what, o.err, fe.Got, o.consumed, want)
			}
		default:
			t.Fatalf("%s: unexpected error %v", what, o.err)
		}
	default:
		if o.consumed != len(data) {
			t.Fatalf("%s: incomplete after %d of %d bytes", what, o.consumed, len(data))
		}
		if len(data) >= 2 {
			if want := frameLen(data); want < 3 || want >= 3060 || len(data) >= want {
				t.Fatalf("%s: incomplete, but the header (%d) is unacceptable or the data (%d bytes) complete", what, want-2, len(data))
			}
		}
	}
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{wire.ErrFrameSize, wire.ErrTrailingData} {
		if errors.Is(b, s) {
			return errors.Is(a, s)
		}
	}
	return false
}

// chunkReader returns data in reads sized as feedFramer's, then io.EOF.
type chunkReader struct {
	data        []byte
	splits      []byte
	i           int
	eofWithData bool // return io.EOF with the last bytes rather than after them
}

func (r *chunkReader) Read(p []byte) (int, error) {
	room := min(len(p), len(r.data))
	if room == 0 && r.i >= len(r.splits) {
		return 0, io.EOF
	}
	n := readSize(r.splits, r.i, room)
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if r.eofWithData && len(r.data) == 0 && r.i >= len(r.splits) && n > 0 {
		return n, io.EOF
	}
	return n, nil
}
