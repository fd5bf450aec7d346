package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/wire"
)

// trickyPieces are the substrings most likely to confuse the decoders:
// their own separators, NUL, newline, bytes that are not UTF-8.
var trickyPieces = []string{
	"a", "Z", "0", "9", " ", "@", ".", "é", "😀", "\xff", "\x00", "\n",
	"name ", " at port ", "<", ">", "> at port ", ">, port = ", ", fd = ",
	" \n", "-", "+",
}

// text draws a string built from tricky pieces and random bytes, with
// every byte of forbidden removed.
func text(minLen, maxLen int, forbidden string) *rapid.Generator[string] {
	piece := rapid.OneOf(
		rapid.SampledFrom(trickyPieces),
		rapid.Map(rapid.SliceOfN(rapid.Byte(), 1, 4), func(b []byte) string { return string(b) }),
	)
	return rapid.Custom(func(t *rapid.T) string {
		ps := rapid.SliceOfN(piece, 0, 12).Draw(t, "pieces")
		s := strings.Join(ps, "")
		for _, c := range []byte(forbidden) {
			s = strings.ReplaceAll(s, string(c), "")
		}
		for len(s) < minLen {
			s += "n"
		}
		if len(s) > maxLen {
			s = s[:maxLen]
		}
		return s
	})
}

func node(t *rapid.T, nameForbidden string) wire.Node {
	return wire.Node{
		Name:  text(0, 1020, nameForbidden).Draw(t, "Name"),
		Port:  rapid.Uint16().Draw(t, "Port"),
		Type:  rapid.OneOf(rapid.SampledFrom([]uint8{77, 72, 104}), rapid.Uint8()).Draw(t, "Type"),
		Proto: rapid.Uint8().Draw(t, "Proto"),
		High:  rapid.Uint16().Draw(t, "High"),
		Low:   rapid.Uint16().Draw(t, "Low"),
		Extra: text(0, 1020, "").Draw(t, "Extra"),
	}
}

// One generator per message.
var (
	alive2ReqGen = rapid.Custom(func(t *rapid.T) *wire.Alive2Req {
		return &wire.Alive2Req{Node: node(t, "\x00")}
	})
	portPlease2ReqGen = rapid.Custom(func(t *rapid.T) *wire.PortPlease2Req {
		return &wire.PortPlease2Req{Name: text(1, 1020, "\x00").Draw(t, "Name")}
	})
	// Messages without fields have nothing to draw, and rapid.Custom
	// refuses a generator that draws nothing.
	namesReqGen = rapid.Just(&wire.NamesReq{})
	dumpReqGen  = rapid.Just(&wire.DumpReq{})
	killReqGen  = rapid.Just(&wire.KillReq{})
	stopReqGen  = rapid.Custom(func(t *rapid.T) *wire.StopReq {
		return &wire.StopReq{Name: text(0, 1020, "\x00").Draw(t, "Name")}
	})

	alive2RespGen = rapid.Custom(func(t *rapid.T) *wire.Alive2Resp {
		return &wire.Alive2Resp{
			Result:   rapid.Uint8().Draw(t, "Result"),
			Creation: rapid.Uint16().Draw(t, "Creation"),
		}
	})
	alive2XRespGen = rapid.Custom(func(t *rapid.T) *wire.Alive2XResp {
		return &wire.Alive2XResp{
			Result:   rapid.Uint8().Draw(t, "Result"),
			Creation: rapid.Uint32().Draw(t, "Creation"),
		}
	})
	port2RespGen = rapid.Custom(func(t *rapid.T) *wire.Port2Resp {
		if rapid.Bool().Draw(t, "found") {
			// A registered name never holds NUL, but the reply format can.
			return &wire.Port2Resp{Node: node(t, "")}
		}
		// Not found: two bytes only, so the node is always zero.
		return &wire.Port2Resp{Result: rapid.Uint8Range(1, 255).Draw(t, "Result")}
	})
	namesRespGen = rapid.Custom(func(t *rapid.T) *wire.NamesResp {
		entry := rapid.Custom(func(t *rapid.T) wire.NameEntry {
			return wire.NameEntry{
				Name: text(0, 300, "\n").Draw(t, "Name"), // '\n' cannot be told from a line end
				Port: rapid.Uint16().Draw(t, "Port"),
			}
		})
		return &wire.NamesResp{
			Port:  rapid.Uint32().Draw(t, "Port"),
			Nodes: rapid.SliceOfN(entry, 0, 5).Draw(t, "Nodes"),
		}
	})
	dumpRespGen = rapid.Custom(func(t *rapid.T) *wire.DumpResp {
		entry := rapid.Custom(func(t *rapid.T) wire.DumpEntry {
			return wire.DumpEntry{
				Name: text(0, 300, "\x00\n").Draw(t, "Name"),
				Port: rapid.Uint16().Draw(t, "Port"),
				Fd:   rapid.Int().Draw(t, "Fd"),
			}
		})
		return &wire.DumpResp{
			Port:   rapid.Uint32().Draw(t, "Port"),
			Active: rapid.SliceOfN(entry, 0, 4).Draw(t, "Active"),
			Old:    rapid.SliceOfN(entry, 0, 4).Draw(t, "Old"),
		}
	})
	killRespGen = rapid.Custom(func(t *rapid.T) *wire.KillResp {
		return &wire.KillResp{OK: rapid.Bool().Draw(t, "OK")}
	})
	stopRespGen = rapid.Custom(func(t *rapid.T) *wire.StopResp {
		return &wire.StopResp{Stopped: rapid.Bool().Draw(t, "Stopped")}
	})
)

type codec interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip returns the property Decode(Encode(m)) == m, and encoding the
// decoded value gives the same bytes. Requests are also checked through
// DecodeRequest, EncodeRequest and ReadRequest.
func roundTrip[M any, P interface {
	*M
	codec
}](gen *rapid.Generator[P]) func(*rapid.T) {
	return func(t *rapid.T) {
		m := gen.Draw(t, "msg")
		b, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary(%#v): %v", m, err)
		}
		got := P(new(M))
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(% x): %v", b, err)
		}
		if diff := cmp.Diff(m, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decoded (-want +got):\n%s", diff)
		}
		b2, err := got.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary(decoded): %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("re-encoded\n% x\nwant\n% x", b2, b)
		}

		req, ok := any(m).(wire.Request)
		if !ok {
			return
		}
		dec, err := wire.DecodeRequest(b)
		if err != nil {
			t.Fatalf("DecodeRequest(% x): %v", b, err)
		}
		if diff := cmp.Diff(req, dec); diff != "" {
			t.Fatalf("DecodeRequest (-want +got):\n%s", diff)
		}
		frame, err := wire.EncodeRequest(req)
		if len(b) > wire.MaxRequestLen {
			if !errors.Is(err, wire.ErrFrameSize) {
				t.Fatalf("EncodeRequest(%d-byte payload) err = %v, want ErrFrameSize", len(b), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeRequest: %v", err)
		}
		body, err := wire.ReadRequest(bytes.NewReader(frame))
		if err != nil {
			t.Fatalf("ReadRequest(EncodeRequest(m)): %v", err)
		}
		if !bytes.Equal(body, b) {
			t.Fatalf("ReadRequest(EncodeRequest(m)) = % x, want % x", body, b)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		prop func(*rapid.T)
	}{
		{"Alive2Req", roundTrip(alive2ReqGen)},
		{"PortPlease2Req", roundTrip(portPlease2ReqGen)},
		{"NamesReq", roundTrip(namesReqGen)},
		{"DumpReq", roundTrip(dumpReqGen)},
		{"KillReq", roundTrip(killReqGen)},
		{"StopReq", roundTrip(stopReqGen)},
		{"Alive2Resp", roundTrip(alive2RespGen)},
		{"Alive2XResp", roundTrip(alive2XRespGen)},
		{"Port2Resp", roundTrip(port2RespGen)},
		{"NamesResp", roundTrip(namesRespGen)},
		{"DumpResp", roundTrip(dumpRespGen)},
		{"KillResp", roundTrip(killRespGen)},
		{"StopResp", roundTrip(stopRespGen)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { rapid.Check(t, tt.prop) })
	}
}

func asRequest[M wire.Request](g *rapid.Generator[M]) *rapid.Generator[wire.Request] {
	return rapid.Map(g, func(m M) wire.Request { return m })
}

var anyRequestGen = rapid.OneOf(
	asRequest(alive2ReqGen),
	asRequest(portPlease2ReqGen),
	asRequest(namesReqGen),
	asRequest(dumpReqGen),
	asRequest(killReqGen),
	asRequest(stopReqGen),
)

// requestBytes draws request payloads near the edges of what decodes.
var requestBytes = rapid.Custom(func(t *rapid.T) []byte {
	few := rapid.SampledFrom([]byte{0x00, 'a', 0xff})
	switch rapid.IntRange(0, 3).Draw(t, "how") {
	case 0: // a tag, then noise
		tag := rapid.SampledFrom([]byte("xzndksvwyapQ\x00")).Draw(t, "tag")
		return append([]byte{tag}, rapid.SliceOfN(rapid.Byte(), 0, 24).Draw(t, "tail")...)
	case 1: // ALIVE2_REQ with small lengths that may or may not match the data
		b := []byte{byte(wire.TagAlive2Req)}
		b = append(b, rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "header")...)
		nlen := rapid.IntRange(0, 6).Draw(t, "Nlen")
		b = append(b, 0, byte(nlen))
		b = append(b, rapid.SliceOfN(few, 0, 6).Draw(t, "name")...)
		elen := rapid.IntRange(0, 6).Draw(t, "Elen")
		b = append(b, 0, byte(elen))
		return append(b, rapid.SliceOfN(few, 0, 8).Draw(t, "rest")...)
	case 2: // a name-carrying request built from NULs and letters
		tag := rapid.SampledFrom([]byte("zs")).Draw(t, "tag")
		return append([]byte{tag}, rapid.SliceOfN(few, 0, 6).Draw(t, "name")...)
	default: // a valid request, then cut, extended or with one byte changed
		b, _ := anyRequestGen.Draw(t, "req").AppendBinary(nil)
		if len(b) == 0 {
			return b
		}
		i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
		switch rapid.IntRange(0, 2).Draw(t, "op") {
		case 0:
			return b[:i]
		case 1:
			return append(b, rapid.SliceOfN(few, 1, 4).Draw(t, "extra")...)
		default:
			b[i] = rapid.OneOf(few, rapid.Byte()).Draw(t, "byte")
			return b
		}
	}
})

// TestDecodeRequestReencode: whatever DecodeRequest accepts, the encoder
// accepts too, and what it writes decodes to the same value. (The encoder
// used to refuse the empty-name, empty-extra ALIVE2_REQ that a 14-byte
// payload decodes to.)
func TestDecodeRequestReencode(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := requestBytes.Draw(t, "body")
		m, err := wire.DecodeRequest(b)
		if err != nil {
			var de *wire.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeRequest(% x) error %T, want *wire.DecodeError", b, err)
			}
			if !errors.Is(err, wire.ErrTruncated) && !errors.Is(err, wire.ErrInvalid) && !errors.Is(err, wire.ErrUnknownTag) {
				t.Fatalf("DecodeRequest(% x) = %v, not a known sentinel", b, err)
			}
			return
		}
		if m.Tag() != wire.Tag(b[0]) {
			t.Fatalf("Tag() = %v, payload starts with %v", m.Tag(), wire.Tag(b[0]))
		}
		enc, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("DecodeRequest(% x) = %#v, but AppendBinary refuses it: %v", b, m, err)
		}
		again, err := wire.DecodeRequest(enc)
		if err != nil {
			t.Fatalf("DecodeRequest(AppendBinary(%#v) = % x): %v", m, enc, err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("re-decoded (-want +got):\n%s", diff)
		}
		enc2, err := again.AppendBinary(nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoded % x, %v; want % x", enc2, err, enc)
		}
	})
}

// responseBytes draws reply bytes: valid replies, cut, extended or changed.
var responseBytes = rapid.Custom(func(t *rapid.T) []byte {
	gens := []*rapid.Generator[wire.Response]{
		rapid.Map(port2RespGen, func(m *wire.Port2Resp) wire.Response { return m }),
		rapid.Map(namesRespGen, func(m *wire.NamesResp) wire.Response { return m }),
		rapid.Map(dumpRespGen, func(m *wire.DumpResp) wire.Response { return m }),
		rapid.Map(stopRespGen, func(m *wire.StopResp) wire.Response { return m }),
	}
	b, _ := rapid.OneOf(gens...).Draw(t, "resp").AppendBinary(nil)
	if len(b) == 0 || rapid.Bool().Draw(t, "keep") {
		return b
	}
	i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
	switch rapid.IntRange(0, 2).Draw(t, "op") {
	case 0:
		return b[:i]
	case 1:
		return append(b, rapid.SliceOfN(rapid.Byte(), 1, 4).Draw(t, "extra")...)
	default:
		b[i] = rapid.OneOf(rapid.SampledFrom([]byte("0+- \n\x00<>,")), rapid.Byte()).Draw(t, "byte")
		return b
	}
})

// TestDecodeResponseReencode: whatever a reply decoder accepts re-encodes
// to bytes that decode to the same value.
func TestDecodeResponseReencode(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := responseBytes.Draw(t, "reply")
		for _, m := range []codec{new(wire.Port2Resp), new(wire.NamesResp), new(wire.DumpResp), new(wire.StopResp), new(wire.KillResp)} {
			if err := m.UnmarshalBinary(b); err != nil {
				var de *wire.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("%T.UnmarshalBinary(% x) error %T, want *wire.DecodeError", m, b, err)
				}
				continue
			}
			enc, err := m.AppendBinary(nil)
			if err != nil {
				t.Fatalf("%T: decoded % x, AppendBinary refuses it: %v", m, b, err)
			}
			again := newLike(m.(wire.Response))
			if err := again.UnmarshalBinary(enc); err != nil {
				t.Fatalf("%T: UnmarshalBinary(AppendBinary(decoded)): %v", m, err)
			}
			if diff := cmp.Diff(m, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("%T re-decoded (-want +got):\n%s", m, diff)
			}
		}
	})
}
