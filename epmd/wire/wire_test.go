package wire_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gopmd/gopmd/epmd/wire"
)

// cat concatenates byte groups, so that tables can comment each group.
func cat(groups ...[]byte) []byte {
	var b []byte
	for _, g := range groups {
		b = append(b, g...)
	}
	return b
}

// unmarshaler is implemented by every message type of the package.
type unmarshaler interface {
	UnmarshalBinary([]byte) error
}

// wantDecodeError checks that err wraps sentinel and is a *wire.DecodeError
// naming msg and field at offset. An empty msg or field is not checked; a
// negative offset is not checked.
func wantDecodeError(t *testing.T, err, sentinel error, msg, field string, offset int) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, sentinel)
	}
	var de *wire.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %T (%v), want *wire.DecodeError", err, err)
	}
	if msg != "" && de.Msg != msg {
		t.Errorf("DecodeError.Msg = %q, want %q", de.Msg, msg)
	}
	if field != "" && de.Field != field {
		t.Errorf("DecodeError.Field = %q, want %q", de.Field, field)
	}
	if offset >= 0 && de.Offset != offset {
		t.Errorf("DecodeError.Offset = %d, want %d", de.Offset, offset)
	}
}

// checkPrefixesTruncated checks that decode fails with ErrTruncated on every
// strict prefix of body, except the lengths listed in accept (prefixes that
// are themselves complete messages by design).
func checkPrefixesTruncated(t *testing.T, body []byte, decode func([]byte) error, accept ...int) {
	t.Helper()
	for i := range len(body) {
		if slices.Contains(accept, i) {
			continue
		}
		err := decode(body[:i:i])
		if !errors.Is(err, wire.ErrTruncated) {
			t.Errorf("decode(body[:%d] = % x) = %v, want ErrTruncated", i, body[:i], err)
		}
	}
}

func TestTagString(t *testing.T) {
	tests := []struct {
		tag  wire.Tag
		want string
	}{
		{wire.TagAlive2Req, "ALIVE2_REQ(120 'x')"},
		{wire.TagAlive2Resp, "ALIVE2_RESP(121 'y')"},
		{wire.TagAlive2XResp, "ALIVE2_X_RESP(118 'v')"},
		{wire.TagPortPlease2Req, "PORT_PLEASE2_REQ(122 'z')"},
		{wire.TagPort2Resp, "PORT2_RESP(119 'w')"},
		{wire.TagNamesReq, "NAMES_REQ(110 'n')"},
		{wire.TagDumpReq, "DUMP_REQ(100 'd')"},
		{wire.TagKillReq, "KILL_REQ(107 'k')"},
		{wire.TagStopReq, "STOP_REQ(115 's')"},
		// Legacy tags the daemon no longer serves.
		{wire.Tag('a'), "UNKNOWN(97 'a')"},
		{wire.Tag('p'), "UNKNOWN(112 'p')"},
		{wire.Tag('Y'), "UNKNOWN(89 'Y')"},
		{wire.Tag(' '), "UNKNOWN(32 ' ')"},
		{wire.Tag('~'), "UNKNOWN(126 '~')"},
		// Unprintable tags show the number only.
		{wire.Tag(0x00), "UNKNOWN(0)"},
		{wire.Tag(0x1f), "UNKNOWN(31)"},
		{wire.Tag(0x7f), "UNKNOWN(127)"},
		{wire.Tag(0xff), "UNKNOWN(255)"},
	}
	for _, tt := range tests {
		if got := tt.tag.String(); got != tt.want {
			t.Errorf("Tag(%d).String() = %q, want %q", byte(tt.tag), got, tt.want)
		}
	}
}

// TestConstants pins the limits and codes of facts §1.
func TestConstants(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"DefaultPort", wire.DefaultPort, 4369},
		{"MaxSymLen", wire.MaxSymLen, 1020},
		{"MaxNameChars", wire.MaxNameChars, 255},
		{"MaxRequestLen", wire.MaxRequestLen, 3057},
		{"ErrorCreation", wire.ErrorCreation, 99},
		{"NodeNormal", int(wire.NodeNormal), 'M'},
		{"NodeHidden", int(wire.NodeHidden), 'H'},
		{"NodeHiddenEI", int(wire.NodeHiddenEI), 'h'},
		{"ProtoTCP4", int(wire.ProtoTCP4), 0},
		{"TagAlive2Req", int(wire.TagAlive2Req), 'x'},
		{"TagAlive2Resp", int(wire.TagAlive2Resp), 'y'},
		{"TagAlive2XResp", int(wire.TagAlive2XResp), 'v'},
		{"TagPortPlease2Req", int(wire.TagPortPlease2Req), 'z'},
		{"TagPort2Resp", int(wire.TagPort2Resp), 'w'},
		{"TagNamesReq", int(wire.TagNamesReq), 'n'},
		{"TagDumpReq", int(wire.TagDumpReq), 'd'},
		{"TagKillReq", int(wire.TagKillReq), 'k'},
		{"TagStopReq", int(wire.TagStopReq), 's'},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "with detail",
			err:  &wire.DecodeError{Msg: "request", Field: "tag", Offset: 0, Err: wire.ErrUnknownTag, Detail: "UNKNOWN(81 'Q')"},
			want: "epmd: unknown message tag: request field tag at offset 0: UNKNOWN(81 'Q')",
		},
		{
			name: "without detail",
			err:  &wire.DecodeError{Msg: "ALIVE2_RESP", Field: "Result", Offset: 1, Err: wire.ErrTruncated},
			want: "epmd: message truncated: ALIVE2_RESP field Result at offset 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}

	// The decoder fills the same fields.
	_, err := wire.DecodeRequest([]byte("Q"))
	if got, want := err.Error(), "epmd: unknown message tag: request field tag at offset 0: UNKNOWN(81 'Q')"; got != want {
		t.Errorf("DecodeRequest(\"Q\") error = %q, want %q", got, want)
	}
	var r wire.Alive2Resp
	err = r.UnmarshalBinary([]byte{'y'})
	if got, want := err.Error(), "epmd: message truncated: ALIVE2_RESP field Result at offset 1"; got != want {
		t.Errorf("Alive2Resp.UnmarshalBinary(\"y\") error = %q, want %q", got, want)
	}
}

// TestSentinelMessages checks the convention that messages start with "epmd:".
func TestSentinelMessages(t *testing.T) {
	for _, err := range []error{
		wire.ErrTruncated, wire.ErrTrailingData, wire.ErrUnknownTag,
		wire.ErrTooLarge, wire.ErrFrameSize, wire.ErrInvalid,
	} {
		if !strings.HasPrefix(err.Error(), "epmd: ") {
			t.Errorf("%q does not start with \"epmd: \"", err)
		}
	}
}
