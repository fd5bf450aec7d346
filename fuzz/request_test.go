package fuzz_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/wire"
)

// FuzzDecodeRequest decodes arbitrary bytes as a request payload (the frame
// without its length header), in the style of x/net dnsmessage's
// FuzzUnpackPack:
//
//   - DecodeRequest never panics; a failure is a *wire.DecodeError wrapping
//     one of the sentinel errors, with an offset inside the input.
//   - A success has the tag of the first byte, and AppendBinary succeeds on
//     it; decoding that encoding gives an equal value (cmp.Diff), and
//     encoding again gives identical bytes.
//
// The only inputs whose decoding may fail to encode are listed in
// encodeExempt.
func FuzzDecodeRequest(f *testing.F) {
	for _, b := range requestSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeRequest(t, body)
	})
}

func checkDecodeRequest(t *testing.T, body []byte) {
	t.Helper()
	req, err := wire.DecodeRequest(body)
	if err != nil {
		checkDecodeError(t, err, len(body))
		return
	}
	if got, want := req.Tag(), wire.Tag(body[0]); got != want {
		t.Fatalf("DecodeRequest(%q) has tag %v, want %v", body, got, want)
	}
	enc, err := req.AppendBinary(nil)
	if err != nil {
		if why := encodeExempt(body, err); why != "" {
			t.Logf("not re-encodable, as expected: %s", why)
			return
		}
		t.Fatalf("DecodeRequest(%q) = %#v, but AppendBinary fails: %v", body, req, err)
	}
	req2, err := wire.DecodeRequest(enc)
	if err != nil {
		t.Fatalf("DecodeRequest(%q) = %#v, encoded as %q, which does not decode: %v", body, req, enc, err)
	}
	if d := cmp.Diff(req, req2); d != "" {
		t.Fatalf("decode(encode(decode(%q))) differs (-first +second):\n%s", body, d)
	}
	enc2, err := req2.AppendBinary(nil)
	if err != nil {
		t.Fatalf("second AppendBinary of %#v: %v", req2, err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encodings differ:\nfirst  %q\nsecond %q", enc, enc2)
	}
	// Appending to a non-empty buffer keeps the prefix and adds the same bytes.
	enc3, err := req.AppendBinary([]byte("prefix"))
	if err != nil || !bytes.Equal(enc3, append([]byte("prefix"), enc...)) {
		t.Fatalf("AppendBinary(prefix) = %q, %v; want prefix + %q", enc3, err, enc)
	}
	// A request short enough for a frame is framed the same way.
	if len(enc) <= wire.MaxRequestLen {
		fr, err := wire.EncodeRequest(req)
		if err != nil || !bytes.Equal(fr, wire.AppendRawFrame(nil, uint16(len(enc)), enc)) {
			t.Fatalf("EncodeRequest(%#v) = %q, %v; want the frame of %q", req, fr, err, enc)
		}
	}
}

// encodeExempt reports why req, decoded from body, may legitimately fail to
// encode ("" when it may not): a payload longer than a 16-bit length can
// describe, which no frame can carry, may hold a name the encoders refuse
// (over 0xFFFE or 0xFFFF bytes).
func encodeExempt(body []byte, err error) string {
	if len(body) > 0xFFFF && errors.Is(err, wire.ErrTooLarge) {
		return "payload longer than 65535 bytes"
	}
	return ""
}

// checkDecodeError checks that err is a *wire.DecodeError wrapping one of
// the sentinels, pointing inside an input of n bytes.
func checkDecodeError(t *testing.T, err error, n int) {
	t.Helper()
	var de *wire.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *wire.DecodeError", err, err)
	}
	known := false
	for _, s := range []error{wire.ErrTruncated, wire.ErrTrailingData, wire.ErrUnknownTag, wire.ErrTooLarge, wire.ErrInvalid} {
		known = known || errors.Is(err, s)
	}
	if !known {
		t.Fatalf("error %v wraps no sentinel error", err)
	}
	if de.Offset < 0 || de.Offset > n {
		t.Fatalf("error %v: offset %d outside the %d-byte input", err, de.Offset, n)
	}
	if de.Msg == "" || de.Field == "" || err.Error() == "" {
		t.Fatalf("error %#v lacks a message or field", de)
	}
}
