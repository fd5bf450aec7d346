package fuzz_test

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/wire"
)

// FuzzClientReplies hands the bytes a hostile or broken daemon might send
// to every reply decoder a client uses: NamesResp, DumpResp, Port2Resp,
// DecodeAlive2Reply (and the two ALIVE2 reply types), KillResp, StopResp.
// None may panic; a failure must be a *wire.DecodeError.
//
// Every successful decode must re-encode, and decoding that must give the
// same value (cmp.Diff). Where the format is unambiguous the re-encoding
// must also be the input byte for byte: ALIVE2 replies, PORT2_RESP and
// KILL always; STOP except that "NOEXIST" alone (what a client reading 7
// bytes sees) encodes as stock's "NOEXISTSTOPPED"; NAMES and DUMP except
// where a number is spelled non-canonically (leading zeros, a sign), which
// strconv accepts and the encoder does not reproduce.
func FuzzClientReplies(f *testing.F) {
	for _, b := range replySeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkReply(t, b, "NAMES", new(wire.NamesResp), noncanonicalNumber.Match(b))
		checkReply(t, b, "DUMP", new(wire.DumpResp), noncanonicalNumber.Match(b))
		checkReply(t, b, "PORT2", new(wire.Port2Resp), false)
		checkReply(t, b, "ALIVE2_RESP", new(wire.Alive2Resp), false)
		checkReply(t, b, "ALIVE2_X_RESP", new(wire.Alive2XResp), false)
		checkReply(t, b, "KILL", new(wire.KillResp), false)
		checkReply(t, b, "STOP", new(wire.StopResp), string(b) == wire.StopReplyNoExist)

		result, creation, err := wire.DecodeAlive2Reply(b)
		if err != nil {
			checkDecodeError(t, err, len(b))
			return
		}
		var enc []byte
		switch n := wire.Alive2ReplyLen(b[0]); n {
		case 4:
			enc, _ = (&wire.Alive2Resp{Result: result, Creation: uint16(creation)}).AppendBinary(nil)
		case 6:
			enc, _ = (&wire.Alive2XResp{Result: result, Creation: creation}).AppendBinary(nil)
		default:
			t.Fatalf("DecodeAlive2Reply(%q) succeeded, but Alive2ReplyLen says %d", b, n)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("DecodeAlive2Reply(%q) = %d, %d, which encodes as %q", b, result, creation, enc)
		}
	})
}

// noncanonicalNumber finds a NAMES or DUMP number that strconv parses but
// the encoder would write differently: "port 05", "port = 05", "fd = +5",
// "fd = -0".
var noncanonicalNumber = regexp.MustCompile(`(port |port = |fd = )(0[0-9]|[+]|-0)`)

type reply interface {
	wire.Response
	UnmarshalBinary([]byte) error
}

// checkReply decodes b into m and checks the round trip. ambiguous says
// the input may be a non-canonical spelling of what m encodes.
func checkReply[R reply](t *testing.T, b []byte, what string, m R, ambiguous bool) {
	t.Helper()
	if err := m.UnmarshalBinary(b); err != nil {
		checkDecodeError(t, err, len(b))
		return
	}
	enc, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatalf("%s: %q decodes to %#v, which does not encode: %v", what, b, m, err)
	}
	m2 := newOf(m)
	if err := m2.UnmarshalBinary(enc); err != nil {
		t.Fatalf("%s: %q decodes to %#v, encoded as %q, which does not decode: %v", what, b, m, enc, err)
	}
	if d := cmp.Diff(m, m2); d != "" {
		t.Fatalf("%s: decode(encode(decode(%q))) differs (-first +second):\n%s", what, b, d)
	}
	if !ambiguous && !bytes.Equal(enc, b) {
		t.Fatalf("%s: %q decodes to %#v, which encodes as %q", what, b, m, enc)
	}
}

// newOf returns a new zero value of m's pointed-to type.
func newOf[R reply](m R) R {
	var r any
	switch any(m).(type) {
	case *wire.NamesResp:
		r = new(wire.NamesResp)
	case *wire.DumpResp:
		r = new(wire.DumpResp)
	case *wire.Port2Resp:
		r = new(wire.Port2Resp)
	case *wire.Alive2Resp:
		r = new(wire.Alive2Resp)
	case *wire.Alive2XResp:
		r = new(wire.Alive2XResp)
	case *wire.KillResp:
		r = new(wire.KillResp)
	case *wire.StopResp:
		r = new(wire.StopResp)
	}
	return r.(R)
}
