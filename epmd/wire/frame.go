package wire

import (
	"io"
	"strconv"
)

// Framer reassembles one request frame exactly the way stock epmd reads it,
// so that the edge cases of its read loop come out the same:
//
//   - While the length is unknown, a read may take up to 3059 bytes (the
//     3060-byte buffer less one byte kept for a NUL).
//   - Once the 2-byte length is in, Length 0 or Length >= 3058 is an error
//     (ErrFrameSize), and so is having already received more bytes than the
//     frame declares (ErrTrailingData): stock epmd then drops the request
//     unexecuted, so pipelined requests sent in one burst get no reply.
//   - After that, a read takes exactly the bytes still missing, so bytes
//     sent after a complete frame are never consumed.
//
// The caller reads into Next() and reports the count with Advance. A Framer
// is reusable after Reset.
type Framer struct {
	buf  [inBufSize]byte
	got  int   // bytes buffered, header included
	want int   // 0 until the header is in, then Length+2
	err  error // the frame's failure, sticky until Reset
}

// Next returns the slice the next read should fill. Its length is the most
// stock epmd would ask the kernel for at this point. It is empty once a
// frame is complete or failed.
func (f *Framer) Next() []byte {
	switch {
	case f.err != nil:
		// After a failure want may lie beyond the buffer (Length >= 3058)
		// or below got (Length 0, trailing data): ask for nothing.
		return nil
	case f.want == 0:
		return f.buf[f.got : inBufSize-1]
	}
	return f.buf[f.got:f.want]
}

// Advance records that n bytes were read into Next(). It returns the
// frame's payload once complete (valid until Reset), nil while more bytes are
// needed, or an error when the frame is unacceptable. Once it has returned
// an error it returns the same error until Reset.
func (f *Framer) Advance(n int) ([]byte, error) {
	if n < 0 || n > len(f.Next()) {
		panic("wire: Framer.Advance beyond Next")
	}
	if f.err != nil {
		return nil, f.err
	}
	f.got += n
	if f.want == 0 && f.got >= 2 {
		length := int(f.buf[0])<<8 | int(f.buf[1])
		f.want = length + 2
		if f.want < 3 || f.want >= inBufSize {
			f.err = &FrameError{Length: length, Err: ErrFrameSize}
			return nil, f.err
		}
		if f.got > f.want {
			f.err = &FrameError{Length: length, Got: f.got - 2, Err: ErrTrailingData}
			return nil, f.err
		}
	}
	if f.want != 0 && f.got == f.want {
		return f.buf[2:f.want], nil
	}
	return nil, nil
}

// Buffered reports how many bytes, header included, have been received.
func (f *Framer) Buffered() int { return f.got }

// Reset empties the Framer for another frame.
func (f *Framer) Reset() { f.got, f.want, f.err = 0, 0, nil }

// FrameError says why a frame was refused.
type FrameError struct {
	Length int   // the Length field
	Got    int   // payload bytes received, for ErrTrailingData
	Err    error // ErrFrameSize or ErrTrailingData
}

func (e *FrameError) Error() string {
	if e.Err == ErrTrailingData {
		return "epmd: got " + strconv.Itoa(e.Got) + " bytes in packet, expected " + strconv.Itoa(e.Length)
	}
	return "epmd: invalid packet size (" + strconv.Itoa(e.Length) + ")"
}

func (e *FrameError) Unwrap() error { return e.Err }

// ReadRequest reads one frame from r with a Framer and returns a copy of its
// payload. A stream that ends before the frame is complete gives
// io.ErrUnexpectedEOF (io.EOF if nothing at all was read).
func ReadRequest(r io.Reader) ([]byte, error) {
	var f Framer
	for {
		n, err := r.Read(f.Next())
		body, ferr := f.Advance(n)
		if ferr != nil {
			return nil, ferr
		}
		if body != nil {
			return append([]byte(nil), body...), nil
		}
		if err != nil {
			if err == io.EOF && f.Buffered() > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// AppendFrame appends body behind its 2-byte length header. It refuses an
// empty body and one longer than MaxRequestLen, which stock epmd would drop.
func AppendFrame(b, body []byte) ([]byte, error) {
	if len(body) == 0 || len(body) > MaxRequestLen {
		return b, &FrameError{Length: len(body), Err: ErrFrameSize}
	}
	return append(appendU16(b, uint16(len(body))), body...), nil
}

// AppendRawFrame appends the given length header and body with no checks at
// all, so tests can send what a hostile or broken client would.
func AppendRawFrame(b []byte, length uint16, body []byte) []byte {
	return append(appendU16(b, length), body...)
}

// EncodeRequest returns the framed request, ready to write.
func EncodeRequest(r Request) ([]byte, error) {
	body, err := r.AppendBinary(make([]byte, 2, 64))
	if err != nil {
		return nil, err
	}
	n := len(body) - 2
	if n > MaxRequestLen {
		return nil, &FrameError{Length: n, Err: ErrFrameSize}
	}
	body[0], body[1] = byte(n>>8), byte(n)
	return body, nil
}
