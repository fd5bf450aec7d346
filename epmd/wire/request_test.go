package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/wire"
)

// requestCases are built from the stock transcripts (facts §4 and §14) and
// the captures of real clients (facts §4.1, §9.4, §11).
var requestCases = []struct {
	name  string
	msg   wire.Request
	body  []byte // the payload, without the length header
	fixed bool   // fixed structure: every strict prefix is truncated
}{
	{
		name: "alive2 real OTP 25 node probe1",
		msg: &wire.Alive2Req{Node: wire.Node{Name: "probe1", Port: 40367,
			Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}},
		body: cat(
			[]byte{120},        // tag ALIVE2_REQ ('x')
			[]byte{0x9d, 0xaf}, // PortNo 40367
			[]byte{77},         // NodeType normal ('M')
			[]byte{0},          // Protocol tcp/ipv4
			[]byte{0x00, 0x06}, // HighestVersion 6
			[]byte{0x00, 0x05}, // LowestVersion 5
			[]byte{0x00, 0x06}, // Nlen 6
			[]byte("probe1"),   // NodeName
			[]byte{0x00, 0x00}, // Elen 0 (no Extra)
		),
		fixed: true,
	},
	{
		name: "alive2 v6 alpha",
		msg: &wire.Alive2Req{Node: wire.Node{Name: "alpha", Port: 5555,
			Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}},
		body: cat(
			[]byte{120},        // tag ALIVE2_REQ ('x')
			[]byte{0x15, 0xb3}, // PortNo 5555
			[]byte{77, 0},      // NodeType normal ('M'), Protocol tcp/ipv4
			[]byte{0x00, 0x06}, // HighestVersion 6
			[]byte{0x00, 0x05}, // LowestVersion 5
			[]byte{0x00, 0x05}, // Nlen 5
			[]byte("alpha"),    // NodeName
			[]byte{0x00, 0x00}, // Elen 0 (no Extra)
		),
		fixed: true,
	},
	{
		name: "alive2 v5 beta hidden with extra",
		msg: &wire.Alive2Req{Node: wire.Node{Name: "beta", Port: 6666,
			Type: wire.NodeHidden, Proto: wire.ProtoTCP4, High: 5, Low: 5, Extra: "EXTRA\x00x"}},
		body: cat(
			[]byte{120},          // tag ALIVE2_REQ ('x')
			[]byte{0x1a, 0x0a},   // PortNo 6666
			[]byte{72, 0},        // NodeType hidden ('H'), Protocol tcp/ipv4
			[]byte{0x00, 0x05},   // HighestVersion 5
			[]byte{0x00, 0x05},   // LowestVersion 5
			[]byte{0x00, 0x04},   // Nlen 4
			[]byte("beta"),       // NodeName
			[]byte{0x00, 0x07},   // Elen 7
			[]byte("EXTRA\x00x"), // Extra, NUL included
		),
		fixed: true,
	},
	{
		name: "alive2 erl_interface C node",
		msg: &wire.Alive2Req{Node: wire.Node{Name: "cnode", Port: 10000,
			Type: wire.NodeHiddenEI, Proto: wire.ProtoTCP4, High: 6, Low: 6}},
		body: cat(
			[]byte{120},        // tag ALIVE2_REQ ('x')
			[]byte{0x27, 0x10}, // PortNo 10000
			[]byte{104, 0},     // NodeType ei hidden ('h'), Protocol tcp/ipv4
			[]byte{0x00, 0x06}, // HighestVersion 6
			[]byte{0x00, 0x06}, // LowestVersion 6
			[]byte{0x00, 0x05}, // Nlen 5
			[]byte("cnode"),    // NodeName
			[]byte{0x00, 0x00}, // Elen 0 (no Extra)
		),
		fixed: true,
	},
	{
		name: "alive2 empty name with one extra byte",
		msg: &wire.Alive2Req{Node: wire.Node{Name: "", Port: 5000,
			Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5, Extra: "X"}},
		body: cat(
			[]byte{120},        // tag ALIVE2_REQ ('x')
			[]byte{0x13, 0x88}, // PortNo 5000
			[]byte{77, 0},      // NodeType normal ('M'), Protocol tcp/ipv4
			[]byte{0x00, 0x06}, // HighestVersion 6
			[]byte{0x00, 0x05}, // LowestVersion 5
			[]byte{0x00, 0x00}, // Nlen 0 (stock registers the empty name)
			[]byte{0x00, 0x01}, // Elen 1
			[]byte("X"),        // Extra; makes the payload 14 bytes
		),
		fixed: true,
	},
	{
		name: "port_please2 alpha",
		msg:  &wire.PortPlease2Req{Name: "alpha"},
		body: cat(
			[]byte{122},     // tag PORT_PLEASE2_REQ ('z')
			[]byte("alpha"), // NodeName, no terminator
		),
	},
	{
		name: "port_please2 gamma",
		msg:  &wire.PortPlease2Req{Name: "gamma"},
		body: cat(
			[]byte{122},     // tag PORT_PLEASE2_REQ ('z')
			[]byte("gamma"), // NodeName, no terminator
		),
	},
	{
		name: "names",
		msg:  &wire.NamesReq{},
		body: []byte{110}, // tag NAMES_REQ ('n')
	},
	{
		name: "dump",
		msg:  &wire.DumpReq{},
		body: []byte{100}, // tag DUMP_REQ ('d')
	},
	{
		name: "kill",
		msg:  &wire.KillReq{},
		body: []byte{107}, // tag KILL_REQ ('k')
	},
	{
		name: "stop foo",
		msg:  &wire.StopReq{Name: "foo"},
		body: cat(
			[]byte{115},   // tag STOP_REQ ('s')
			[]byte("foo"), // NodeName, no NUL (as epmd -stop sends it)
		),
	},
	{
		name: "stop xxx42",
		msg:  &wire.StopReq{Name: "xxx42"},
		body: cat(
			[]byte{115},     // tag STOP_REQ ('s')
			[]byte("xxx42"), // NodeName
		),
	},
	{
		name: "stop empty name",
		msg:  &wire.StopReq{Name: ""},
		body: cat(
			[]byte{115}, // tag STOP_REQ ('s')
			[]byte{0},   // NUL: the only form of the empty name stock accepts
		),
	},
}

func TestRequestEncodeDecode(t *testing.T) {
	for _, tt := range requestCases {
		t.Run(tt.name, func(t *testing.T) {
			// AppendBinary appends to what is already there.
			prefix := []byte("prefix")
			got, err := tt.msg.AppendBinary(append([]byte(nil), prefix...))
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			if diff := cmp.Diff(cat(prefix, tt.body), got); diff != "" {
				t.Errorf("AppendBinary (-want +got):\n%s", diff)
			}

			// EncodeRequest adds the big-endian length header.
			frame, err := wire.EncodeRequest(tt.msg)
			if err != nil {
				t.Fatalf("EncodeRequest: %v", err)
			}
			wantFrame := cat([]byte{byte(len(tt.body) >> 8), byte(len(tt.body))}, tt.body)
			if diff := cmp.Diff(wantFrame, frame); diff != "" {
				t.Errorf("EncodeRequest (-want +got):\n%s", diff)
			}

			// DecodeRequest dispatches on the tag and gives the value.
			dec, err := wire.DecodeRequest(tt.body)
			if err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if diff := cmp.Diff(tt.msg, dec); diff != "" {
				t.Errorf("DecodeRequest (-want +got):\n%s", diff)
			}
			if dec.Tag() != wire.Tag(tt.body[0]) {
				t.Errorf("Tag() = %v, want %v", dec.Tag(), wire.Tag(tt.body[0]))
			}

			if tt.fixed {
				checkPrefixesTruncated(t, tt.body, func(b []byte) error {
					_, err := wire.DecodeRequest(b)
					return err
				})
			}
		})
	}
}

// TestEncodeRequestRealCaptures pins whole frames as real clients send them
// (facts §4.1 and §9.4).
func TestEncodeRequestRealCaptures(t *testing.T) {
	tests := []struct {
		name  string
		msg   wire.Request
		frame []byte
	}{
		{
			name: "erl -sname probe1",
			msg: &wire.Alive2Req{Node: wire.Node{Name: "probe1", Port: 40367,
				Type: wire.NodeNormal, High: 6, Low: 5}},
			frame: []byte{
				0x00, 0x13, // Length 19
				0x78, 0x9d, 0xaf, 0x4d, 0x00, 0x00, 0x06, 0x00, 0x05, 0x00, 0x06, // 'x' port 'M' 0 6 5 nlen
				0x70, 0x72, 0x6f, 0x62, 0x65, 0x31, // "probe1"
				0x00, 0x00, // Elen 0
			},
		},
		{name: "epmd -names", msg: &wire.NamesReq{}, frame: []byte{0x00, 0x01, 0x6e}},
		{name: "epmd -dump", msg: &wire.DumpReq{}, frame: []byte{0x00, 0x01, 0x64}},
		{name: "epmd -kill", msg: &wire.KillReq{}, frame: []byte{0x00, 0x01, 0x6b}},
		{name: "epmd -stop foo", msg: &wire.StopReq{Name: "foo"}, frame: []byte{0x00, 0x04, 0x73, 'f', 'o', 'o'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.EncodeRequest(tt.msg)
			if err != nil {
				t.Fatalf("EncodeRequest: %v", err)
			}
			if diff := cmp.Diff(tt.frame, got); diff != "" {
				t.Errorf("EncodeRequest (-want +got):\n%s", diff)
			}
		})
	}
}

// alive2Body builds an ALIVE2_REQ payload with the header fields of "alpha"
// and the given raw Nlen, name, Elen, extra and trailing bytes.
func alive2Body(nlen uint16, name string, elen uint16, extra string) []byte {
	return cat(
		[]byte{120},                         // tag ALIVE2_REQ ('x')
		[]byte{0x15, 0xb3},                  // PortNo 5555
		[]byte{77, 0},                       // NodeType normal ('M'), Protocol tcp/ipv4
		[]byte{0x00, 0x06},                  // HighestVersion 6
		[]byte{0x00, 0x05},                  // LowestVersion 5
		[]byte{byte(nlen >> 8), byte(nlen)}, // Nlen
		[]byte(name),                        // NodeName
		[]byte{byte(elen >> 8), byte(elen)}, // Elen
		[]byte(extra),                       // Extra, and whatever follows
	)
}

func alpha(name, extra string) *wire.Alive2Req {
	return &wire.Alive2Req{Node: wire.Node{Name: name, Port: 5555,
		Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5, Extra: extra}}
}

// TestDecodeRequestLenient pins where the decoder accepts what a strict
// decoder would not, exactly as stock epmd does.
func TestDecodeRequestLenient(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want wire.Request
	}{
		{
			name: "alive2 bytes after extra ignored",
			body: alive2Body(5, "alpha", 0, "junk"),
			want: alpha("alpha", ""),
		},
		{
			name: "alive2 bytes after non-empty extra ignored",
			body: alive2Body(5, "alpha", 2, "ab\x00junk"),
			want: alpha("alpha", "ab"),
		},
		{
			name: "alive2 empty name empty extra one trailing byte",
			body: alive2Body(0, "", 0, "j"), // 14 bytes: stock registers ""
			want: alpha("", ""),
		},
		{
			name: "alive2 name not checked for UTF-8 here",
			body: alive2Body(2, "\xff\xfe", 0, ""),
			want: alpha("\xff\xfe", ""),
		},
		{
			name: "alive2 extra not checked for UTF-8",
			body: alive2Body(1, "a", 2, "\xff\xfe"),
			want: alpha("a", "\xff\xfe"),
		},
		{
			name: "port_please2 one trailing NUL stripped",
			body: []byte("zbeta\x00"),
			want: &wire.PortPlease2Req{Name: "beta"},
		},
		{
			name: "port_please2 name not checked for UTF-8 here",
			body: []byte("z\xff"),
			want: &wire.PortPlease2Req{Name: "\xff"},
		},
		{
			name: "port_please2 255 chars decodes",
			body: []byte("z" + strings.Repeat("a", 255)),
			want: &wire.PortPlease2Req{Name: strings.Repeat("a", 255)},
		},
		{
			name: "names junk after tag",
			body: []byte("njunk"),
			want: &wire.NamesReq{},
		},
		{
			name: "names 3057 bytes",
			body: []byte("n" + strings.Repeat("\xff", wire.MaxRequestLen-1)),
			want: &wire.NamesReq{},
		},
		{
			name: "dump junk after tag",
			body: []byte("d\x00junk"),
			want: &wire.DumpReq{},
		},
		{
			name: "kill junk after tag",
			body: []byte("kk"),
			want: &wire.KillReq{},
		},
		{
			name: "stop name ends at first NUL",
			body: []byte("sfoo\x00junk"),
			want: &wire.StopReq{Name: "foo"},
		},
		{
			name: "stop empty name",
			body: []byte("s\x00"),
			want: &wire.StopReq{Name: ""},
		},
		{
			name: "stop empty name junk after NUL",
			body: []byte("s\x00foo"),
			want: &wire.StopReq{Name: ""},
		},
		{
			name: "stop name not checked for UTF-8",
			body: []byte("s\xff\xfe"),
			want: &wire.StopReq{Name: "\xff\xfe"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeRequest(tt.body)
			if err != nil {
				t.Fatalf("DecodeRequest(% x): %v", tt.body, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeRequest (-want +got):\n%s", diff)
			}
			// The decoded value can be sent again and means the same.
			enc, err := got.AppendBinary(nil)
			if err != nil {
				t.Fatalf("AppendBinary of decoded value: %v", err)
			}
			again, err := wire.DecodeRequest(enc)
			if err != nil {
				t.Fatalf("DecodeRequest(AppendBinary(decoded)) = %v", err)
			}
			if diff := cmp.Diff(tt.want, again); diff != "" {
				t.Errorf("re-decoded (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeRequestErrors pins every request stock epmd drops silently.
func TestDecodeRequestErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		err    error
		msg    string
		field  string
		offset int
	}{
		{"empty", nil, wire.ErrTruncated, "request", "tag", 0},
		{"legacy ALIVE_REQ a", []byte("a\x00\x01M"), wire.ErrUnknownTag, "request", "tag", 0},
		{"legacy PORT_PLEASE_REQ p", []byte("palpha"), wire.ErrUnknownTag, "request", "tag", 0},
		{"Q", []byte("Q"), wire.ErrUnknownTag, "request", "tag", 0},
		{"NUL tag", []byte{0x00}, wire.ErrUnknownTag, "request", "tag", 0},
		{"reply tag v", []byte{0x76, 0, 0, 0, 0, 1}, wire.ErrUnknownTag, "request", "tag", 0},

		{"alive2 tag only", []byte("x"), wire.ErrTruncated, "ALIVE2_REQ", "payload", 1},
		{"alive2 13 bytes Nlen 0 Elen 0", alive2Body(0, "", 0, ""), wire.ErrTruncated, "ALIVE2_REQ", "payload", 13},
		{"alive2 Nlen larger than data", alive2Body(6, "alpha", 0, ""), wire.ErrTruncated, "ALIVE2_REQ", "Nlen", 9},
		{"alive2 Nlen leaves no room for Elen", alive2Body(5, "alpha", 0, "")[:17], wire.ErrTruncated, "ALIVE2_REQ", "Nlen", 9},
		{"alive2 Nlen 65535", alive2Body(0xffff, "alpha", 0, ""), wire.ErrTruncated, "ALIVE2_REQ", "Nlen", 9},
		{"alive2 Elen larger than data", alive2Body(5, "alpha", 3, "ab"), wire.ErrTruncated, "ALIVE2_REQ", "Elen", 16},
		{"alive2 Elen 65535", alive2Body(1, "a", 0xffff, "ab"), wire.ErrTruncated, "ALIVE2_REQ", "Elen", 12},
		{"alive2 NUL inside name", alive2Body(5, "al\x00ha", 0, ""), wire.ErrInvalid, "ALIVE2_REQ", "NodeName", 11},
		{"alive2 NUL-terminated name", alive2Body(6, "alpha\x00", 0, ""), wire.ErrInvalid, "ALIVE2_REQ", "NodeName", 11},
		{"alive2 name only NUL", alive2Body(1, "\x00", 0, ""), wire.ErrInvalid, "ALIVE2_REQ", "NodeName", 11},

		{"port_please2 z", []byte("z"), wire.ErrTruncated, "PORT_PLEASE2_REQ", "NodeName", 1},
		{"port_please2 z NUL", []byte("z\x00"), wire.ErrTruncated, "PORT_PLEASE2_REQ", "NodeName", 1},
		{"port_please2 NUL inside", []byte("zfo\x00o"), wire.ErrInvalid, "PORT_PLEASE2_REQ", "NodeName", 1},
		{"port_please2 two trailing NULs", []byte("zbeta\x00\x00"), wire.ErrInvalid, "PORT_PLEASE2_REQ", "NodeName", 1},
		{"port_please2 leading NUL", []byte("z\x00beta"), wire.ErrInvalid, "PORT_PLEASE2_REQ", "NodeName", 1},

		{"stop s alone", []byte("s"), wire.ErrTruncated, "STOP_REQ", "NodeName", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := wire.DecodeRequest(tt.body)
			if got != nil {
				t.Errorf("DecodeRequest(% x) = %#v, want nil", tt.body, got)
			}
			wantDecodeError(t, err, tt.err, tt.msg, tt.field, tt.offset)
		})
	}
}

// TestUnmarshalWrongTag calls each request's UnmarshalBinary directly with
// a payload of another type.
func TestUnmarshalWrongTag(t *testing.T) {
	tests := []struct {
		msg string
		dst unmarshaler
	}{
		{"ALIVE2_REQ", new(wire.Alive2Req)},
		{"PORT_PLEASE2_REQ", new(wire.PortPlease2Req)},
		{"NAMES_REQ", new(wire.NamesReq)},
		{"DUMP_REQ", new(wire.DumpReq)},
		{"KILL_REQ", new(wire.KillReq)},
		{"STOP_REQ", new(wire.StopReq)},
		{"ALIVE2_RESP", new(wire.Alive2Resp)},
		{"ALIVE2_X_RESP", new(wire.Alive2XResp)},
		{"PORT2_RESP", new(wire.Port2Resp)},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			err := tt.dst.UnmarshalBinary([]byte("Qxxxxxxxxxxxxxxxxxxx"))
			wantDecodeError(t, err, wire.ErrUnknownTag, tt.msg, "tag", 0)
			err = tt.dst.UnmarshalBinary(nil)
			wantDecodeError(t, err, wire.ErrTruncated, tt.msg, "tag", 0)
		})
	}
}

// TestRequestEncodeRefuses checks that encoders refuse what stock epmd, or
// our own decoder, would not take, and leave b untouched.
func TestRequestEncodeRefuses(t *testing.T) {
	long := strings.Repeat("a", 0x10000)
	tests := []struct {
		name  string
		msg   wire.Request
		err   error
		field string
	}{
		{"alive2 NUL in name", alpha("al\x00ha", ""), wire.ErrInvalid, "NodeName"},
		{"alive2 name over 65535 bytes", alpha(long, ""), wire.ErrTooLarge, "NodeName"},
		{"alive2 extra over 65535 bytes", alpha("a", long), wire.ErrTooLarge, "Extra"},
		{"port_please2 empty name", &wire.PortPlease2Req{}, wire.ErrInvalid, "NodeName"},
		{"port_please2 NUL in name", &wire.PortPlease2Req{Name: "a\x00"}, wire.ErrInvalid, "NodeName"},
		{"port_please2 name over 65534 bytes", &wire.PortPlease2Req{Name: long[1:]}, wire.ErrTooLarge, "NodeName"},
		{"stop NUL in name", &wire.StopReq{Name: "foo\x00junk"}, wire.ErrInvalid, "NodeName"},
		{"stop name over 65534 bytes", &wire.StopReq{Name: long[1:]}, wire.ErrTooLarge, "NodeName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte("keep")
			got, err := tt.msg.AppendBinary(b)
			wantDecodeError(t, err, tt.err, "", tt.field, -1)
			if diff := cmp.Diff([]byte("keep"), got); diff != "" {
				t.Errorf("AppendBinary changed b (-want +got):\n%s", diff)
			}
			frame, err := wire.EncodeRequest(tt.msg)
			if !errors.Is(err, tt.err) || frame != nil {
				t.Errorf("EncodeRequest = %q, %v; want nil, %v", frame, err, tt.err)
			}
		})
	}

	// The 64 KiB limits sit exactly at the length fields.
	if _, err := alpha(long[1:], "").AppendBinary(nil); err != nil {
		t.Errorf("alive2 name of 65535 bytes: %v", err)
	}
	if _, err := alpha("a", long[1:]).AppendBinary(nil); err != nil {
		t.Errorf("alive2 extra of 65535 bytes: %v", err)
	}
	if _, err := (&wire.PortPlease2Req{Name: long[2:]}).AppendBinary(nil); err != nil {
		t.Errorf("port_please2 name of 65534 bytes: %v", err)
	}
	if _, err := (&wire.StopReq{Name: long[2:]}).AppendBinary(nil); err != nil {
		t.Errorf("stop name of 65534 bytes: %v", err)
	}
}

// TestAlive2EmptyNameEmptyExtra: stock epmd registers the empty name from a
// 14-byte payload with Nlen 0, Elen 0 and one byte after it (the trailing
// byte is ignored), so the decoder produces that value and the encoder
// must be able to send it: it pads with one ignored byte, because the bare
// 13-byte form is dropped by stock epmd.
func TestAlive2EmptyNameEmptyExtra(t *testing.T) {
	m := alpha("", "")
	got, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatalf("AppendBinary: %v", err)
	}
	want := cat(
		[]byte{120},        // tag ALIVE2_REQ ('x')
		[]byte{0x15, 0xb3}, // PortNo 5555
		[]byte{77, 0},      // NodeType normal ('M'), Protocol tcp/ipv4
		[]byte{0x00, 0x06}, // HighestVersion 6
		[]byte{0x00, 0x05}, // LowestVersion 5
		[]byte{0x00, 0x00}, // Nlen 0
		[]byte{0x00, 0x00}, // Elen 0
		[]byte{0x00},       // padding, ignored: stock needs more than 13 bytes
	)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AppendBinary (-want +got):\n%s", diff)
	}
	dec, err := wire.DecodeRequest(got)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	if diff := cmp.Diff(wire.Request(m), dec); diff != "" {
		t.Errorf("DecodeRequest (-want +got):\n%s", diff)
	}
	checkPrefixesTruncated(t, got, func(b []byte) error {
		_, err := wire.DecodeRequest(b)
		return err
	})
}

// TestEncodeRequestTooLong: a request whose payload exceeds MaxRequestLen
// cannot be framed for stock epmd.
func TestEncodeRequestTooLong(t *testing.T) {
	// 13 + 1020 + 2024 = 3057: the largest ALIVE2_REQ that fits.
	m := alpha(strings.Repeat("n", 1020), strings.Repeat("e", 3057-13-1020))
	frame, err := wire.EncodeRequest(m)
	if err != nil {
		t.Fatalf("EncodeRequest(3057-byte payload): %v", err)
	}
	if len(frame) != 3059 || frame[0] != 0x0b || frame[1] != 0xf1 {
		t.Errorf("EncodeRequest: len %d header % x, want 3059 and 0b f1", len(frame), frame[:2])
	}

	m.Extra += "e"
	frame, err = wire.EncodeRequest(m)
	if frame != nil || !errors.Is(err, wire.ErrFrameSize) {
		t.Fatalf("EncodeRequest(3058-byte payload) = %d bytes, %v; want nil, ErrFrameSize", len(frame), err)
	}
	var fe *wire.FrameError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %T, want *wire.FrameError", err)
	}
	if fe.Length != 3058 {
		t.Errorf("FrameError.Length = %d, want 3058", fe.Length)
	}
}

// TestPortPlease2Name checks that PortPlease2Name decodes every body as
// (*PortPlease2Req).UnmarshalBinary does, error for error, and without
// allocating.
func TestPortPlease2Name(t *testing.T) {
	bodies := [][]byte{
		[]byte("zalpha"), []byte("zalpha\x00"), []byte("z"), []byte("z\x00"),
		[]byte("zal\x00pha"), []byte("zal\x00pha\x00"), []byte("z\x00\x00"),
		[]byte("nalpha"), {}, []byte("z" + strings.Repeat("n", 300)),
	}
	for _, body := range bodies {
		var m wire.PortPlease2Req
		uerr := m.UnmarshalBinary(body)
		name, nerr := wire.PortPlease2Name(body)
		switch {
		case (uerr == nil) != (nerr == nil):
			t.Errorf("%q: UnmarshalBinary error %v, PortPlease2Name error %v", body, uerr, nerr)
		case uerr != nil && uerr.Error() != nerr.Error():
			t.Errorf("%q: errors differ: %v / %v", body, uerr, nerr)
		case uerr == nil && string(name) != m.Name:
			t.Errorf("%q: name %q, UnmarshalBinary gave %q", body, name, m.Name)
		}
	}
	body := []byte("zalpha\x00")
	if n := testing.AllocsPerRun(100, func() { wire.PortPlease2Name(body) }); n != 0 {
		t.Errorf("PortPlease2Name allocates %.1f times, want 0", n)
	}
}

// raceEnabled is set by race_on_test.go when built with -race.
var raceEnabled bool

// TestPort2RespEncodesInOneAllocation: the server's look-up path counts on
// a PORT2_RESP being built in one buffer, sized once.
func TestPort2RespEncodesInOneAllocation(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	r := &wire.Port2Resp{Node: wire.Node{Name: strings.Repeat("n", 255), Port: 4242, Type: 77, High: 6, Low: 5, Extra: "extra"}}
	if n := testing.AllocsPerRun(100, func() { r.AppendBinary(nil) }); n != 1 {
		t.Errorf("PORT2_RESP encoding allocates %.1f times, want 1", n)
	}
}
