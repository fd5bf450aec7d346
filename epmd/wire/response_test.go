package wire_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gopmd/gopmd/epmd/wire"
)

// responseCases are the replies of the stock transcripts (facts §4 and §14).
var responseCases = []struct {
	name  string
	msg   wire.Response
	body  []byte
	fixed bool  // fixed structure: every strict prefix is truncated...
	ok    []int // ...except these prefix lengths, complete by design
}{
	{
		name: "alive2_x ok alpha",
		msg:  &wire.Alive2XResp{Result: 0, Creation: 0x6b02b1b1},
		body: cat(
			[]byte{118},                    // tag ALIVE2_X_RESP ('v')
			[]byte{0},                      // Result 0: registered
			[]byte{0x6b, 0x02, 0xb1, 0xb1}, // Creation (u32)
		),
		fixed: true,
	},
	{
		name: "alive2_x ok probe1",
		msg:  &wire.Alive2XResp{Result: 0, Creation: 1795338887},
		body: cat(
			[]byte{118},                    // tag ALIVE2_X_RESP ('v')
			[]byte{0},                      // Result 0: registered
			[]byte{0x6b, 0x02, 0xb2, 0x87}, // Creation 1795338887
		),
		fixed: true,
	},
	{
		name: "alive2_x refused",
		msg:  &wire.Alive2XResp{Result: 1, Creation: wire.ErrorCreation},
		body: cat(
			[]byte{118},                    // tag ALIVE2_X_RESP ('v')
			[]byte{1},                      // Result 1: refused
			[]byte{0x00, 0x00, 0x00, 0x63}, // Creation 99, always on error
		),
		fixed: true,
	},
	{
		name: "alive2 ok beta",
		msg:  &wire.Alive2Resp{Result: 0, Creation: 2},
		body: cat(
			[]byte{121},        // tag ALIVE2_RESP ('y')
			[]byte{0},          // Result 0: registered
			[]byte{0x00, 0x02}, // Creation 2 (u16, 1..3)
		),
		fixed: true,
	},
	{
		name: "alive2 refused",
		msg:  &wire.Alive2Resp{Result: 1, Creation: wire.ErrorCreation},
		body: cat(
			[]byte{121},        // tag ALIVE2_RESP ('y')
			[]byte{1},          // Result 1: refused
			[]byte{0x00, 0x63}, // Creation 99
		),
		fixed: true,
	},
	{
		name: "port2 alpha",
		msg: &wire.Port2Resp{Node: wire.Node{Name: "alpha", Port: 5555,
			Type: wire.NodeNormal, Proto: wire.ProtoTCP4, High: 6, Low: 5}},
		body: cat(
			[]byte{119},                          // tag PORT2_RESP ('w')
			[]byte{0},                            // Result 0: found
			[]byte{0x15, 0xb3},                   // PortNo 5555
			[]byte{0x4d, 0x00},                   // NodeType normal ('M'), Protocol tcp/ipv4
			[]byte{0x00, 0x06},                   // HighestVersion 6
			[]byte{0x00, 0x05},                   // LowestVersion 5
			[]byte{0x00, 0x05},                   // Nlen 5
			[]byte{0x61, 0x6c, 0x70, 0x68, 0x61}, // NodeName "alpha"
			[]byte{0x00, 0x00},                   // Elen 0: always present
		),
		fixed: true,
	},
	{
		name: "port2 beta with extra",
		msg: &wire.Port2Resp{Node: wire.Node{Name: "beta", Port: 6666,
			Type: wire.NodeHidden, Proto: wire.ProtoTCP4, High: 5, Low: 5, Extra: "EXTRA\x00x"}},
		body: cat(
			[]byte{119},                    // tag PORT2_RESP ('w')
			[]byte{0},                      // Result 0: found
			[]byte{0x1a, 0x0a},             // PortNo 6666
			[]byte{0x48, 0x00},             // NodeType hidden ('H'), Protocol tcp/ipv4
			[]byte{0x00, 0x05},             // HighestVersion 5
			[]byte{0x00, 0x05},             // LowestVersion 5
			[]byte{0x00, 0x04},             // Nlen 4
			[]byte{0x62, 0x65, 0x74, 0x61}, // NodeName "beta"
			[]byte{0x00, 0x07},             // Elen 7
			[]byte{0x45, 0x58, 0x54, 0x52, 0x41, 0x00, 0x78}, // Extra "EXTRA\0x"
		),
		fixed: true,
	},
	{
		name: "port2 not found",
		msg:  &wire.Port2Resp{Result: 1},
		body: cat(
			[]byte{119}, // tag PORT2_RESP ('w')
			[]byte{1},   // Result 1: not registered; nothing follows
		),
		fixed: true,
	},
	{
		name: "names empty",
		msg:  &wire.NamesResp{Port: 14369},
		body: []byte{0x00, 0x00, 0x38, 0x21}, // Port 14369 (configured), no lines
	},
	{
		name: "names 3057-byte request reply",
		msg:  &wire.NamesResp{Port: 14371},
		body: []byte{0x00, 0x00, 0x38, 0x23}, // Port 14371
	},
	{
		name: "names -port 70000",
		msg:  &wire.NamesResp{Port: 70000},
		body: []byte{0x00, 0x01, 0x11, 0x70}, // Port 70000: not range-checked
	},
	{
		name: "names two nodes",
		msg: &wire.NamesResp{Port: 14369, Nodes: []wire.NameEntry{
			{Name: "beta", Port: 6666},
			{Name: "alpha", Port: 5555},
		}},
		body: cat(
			[]byte{0x00, 0x00, 0x38, 0x21},      // Port 14369
			[]byte("name beta at port 6666\n"),  // newest first
			[]byte("name alpha at port 5555\n"), // no terminator after the last line
		),
	},
	{
		name: "names empty node name",
		msg:  &wire.NamesResp{Port: 4369, Nodes: []wire.NameEntry{{Name: "", Port: 5000}}},
		body: cat(
			[]byte{0x00, 0x00, 0x11, 0x11}, // Port 4369
			[]byte("name  at port 5000\n"), // two spaces
		),
	},
	{
		name: "dump empty",
		msg:  &wire.DumpResp{Port: 14369},
		body: []byte{0x00, 0x00, 0x38, 0x21}, // Port 14369, no entries
	},
	{
		name: "dump two active",
		msg: &wire.DumpResp{Port: 14369, Active: []wire.DumpEntry{
			{Name: "beta", Port: 6666, Fd: 6},
			{Name: "alpha", Port: 5555, Fd: 5},
		}},
		body: cat(
			[]byte{0x00, 0x00, 0x38, 0x21},                               // Port 14369
			[]byte("active name     <beta> at port 6666, fd = 6\n\x00"),  // 5 spaces after "name", NUL ends the entry
			[]byte("active name     <alpha> at port 5555, fd = 5\n\x00"), // next entry
		),
	},
	{
		name: "dump active and old",
		msg: &wire.DumpResp{Port: 14369,
			Active: []wire.DumpEntry{{Name: "alpha", Port: 5555, Fd: 5}},
			Old:    []wire.DumpEntry{{Name: "beta", Port: 6666, Fd: 6}},
		},
		body: cat(
			[]byte{0x00, 0x00, 0x38, 0x21},                               // Port 14369
			[]byte("active name     <alpha> at port 5555, fd = 5\n\x00"), // registered, newest first
			[]byte("old/unused name <beta>, port = 6666, fd = 6 \n\x00"), // remembered; space before "\n"
		),
	},
	{
		name: "dump empty names",
		msg: &wire.DumpResp{Port: 4369,
			Active: []wire.DumpEntry{{Name: "", Port: 1, Fd: 7}},
			Old:    []wire.DumpEntry{{Name: "", Port: 2, Fd: 8}},
		},
		body: cat(
			[]byte{0x00, 0x00, 0x11, 0x11},                        // Port 4369
			[]byte("active name     <> at port 1, fd = 7\n\x00"),  // empty name prints <>
			[]byte("old/unused name <>, port = 2, fd = 8 \n\x00"), // same for old entries
		),
	},
	{
		name:  "kill OK",
		msg:   &wire.KillResp{OK: true},
		body:  []byte{0x4f, 0x4b}, // "OK": the daemon exits
		fixed: true,
	},
	{
		name:  "kill NO",
		msg:   &wire.KillResp{OK: false},
		body:  []byte{0x4e, 0x4f}, // "NO": nodes are alive
		fixed: true,
	},
	{
		name:  "stop STOPPED",
		msg:   &wire.StopResp{Stopped: true},
		body:  []byte("STOPPED"),
		fixed: true,
	},
	{
		name: "stop NOEXISTSTOPPED",
		msg:  &wire.StopResp{Stopped: false},
		body: cat(
			[]byte("NOEXIST"), // the reply meant
			[]byte("STOPPED"), // and the one stock sends after it by mistake
		),
		fixed: true,
		ok:    []int{7}, // "NOEXIST" is what a 7-byte reader sees
	},
}

// newLike returns a new zero value of m's type, ready to decode into.
func newLike(m wire.Response) unmarshaler {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(unmarshaler)
}

func TestResponseEncodeDecode(t *testing.T) {
	for _, tt := range responseCases {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xee}
			got, err := tt.msg.AppendBinary(append([]byte(nil), prefix...))
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			if diff := cmp.Diff(cat(prefix, tt.body), got); diff != "" {
				t.Errorf("AppendBinary (-want +got):\n%s", diff)
			}

			dec := newLike(tt.msg)
			if err := dec.UnmarshalBinary(tt.body); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if diff := cmp.Diff(tt.msg, dec); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}

			if tt.fixed {
				checkPrefixesTruncated(t, tt.body, func(b []byte) error {
					return newLike(tt.msg).UnmarshalBinary(b)
				}, tt.ok...)
			}
		})
	}
}

// TestStopRespNoExist: the first 7 bytes of the stock NOEXIST reply, which
// is all that epmd -stop and ei_unpublish read.
func TestStopRespNoExist(t *testing.T) {
	m := wire.StopResp{Stopped: true}
	if err := m.UnmarshalBinary([]byte("NOEXIST")); err != nil {
		t.Fatalf("UnmarshalBinary(NOEXIST): %v", err)
	}
	if m.Stopped {
		t.Errorf("UnmarshalBinary(NOEXIST): Stopped = true, want false")
	}
}

// TestDecodeAlive2Reply decodes both registration replies through the one
// entry point a registering client uses.
func TestDecodeAlive2Reply(t *testing.T) {
	tests := []struct {
		name     string
		body     []byte
		result   uint8
		creation uint32
	}{
		{"v ok", []byte{0x76, 0x00, 0x6b, 0x02, 0xb1, 0xb1}, 0, 0x6b02b1b1},
		{"v refused", []byte{0x76, 0x01, 0x00, 0x00, 0x00, 0x63}, 1, 99},
		{"y ok", []byte{0x79, 0x00, 0x00, 0x02}, 0, 2},
		{"y refused", []byte{0x79, 0x01, 0x00, 0x63}, 1, 99},
		{"y max creation", []byte{0x79, 0x00, 0xff, 0xfe}, 0, 0xfffe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, cr, err := wire.DecodeAlive2Reply(tt.body)
			if err != nil {
				t.Fatalf("DecodeAlive2Reply: %v", err)
			}
			if res != tt.result || cr != tt.creation {
				t.Errorf("DecodeAlive2Reply = %d, %d; want %d, %d", res, cr, tt.result, tt.creation)
			}
			if n := wire.Alive2ReplyLen(tt.body[0]); n != len(tt.body) {
				t.Errorf("Alive2ReplyLen(%#x) = %d, want %d", tt.body[0], n, len(tt.body))
			}
			checkPrefixesTruncated(t, tt.body, func(b []byte) error {
				_, _, err := wire.DecodeAlive2Reply(b)
				return err
			})
			_, _, err = wire.DecodeAlive2Reply(append(tt.body[:len(tt.body):len(tt.body)], 0))
			wantDecodeError(t, err, wire.ErrTrailingData, "", "end", len(tt.body))
		})
	}

	res, cr, err := wire.DecodeAlive2Reply([]byte{0x77, 0x01})
	wantDecodeError(t, err, wire.ErrUnknownTag, "ALIVE2 reply", "tag", 0)
	if res != 0 || cr != 0 {
		t.Errorf("DecodeAlive2Reply(w 01) = %d, %d; want 0, 0 with the error", res, cr)
	}
	_, _, err = wire.DecodeAlive2Reply(nil)
	wantDecodeError(t, err, wire.ErrTruncated, "ALIVE2 reply", "tag", 0)

	for _, b := range []byte{0, 'w', 'x', 'Y', 0xff} {
		if n := wire.Alive2ReplyLen(b); n != 0 {
			t.Errorf("Alive2ReplyLen(%#x) = %d, want 0", b, n)
		}
	}
}

func TestResponseDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		dst    unmarshaler
		body   []byte
		err    error
		msg    string
		field  string
		offset int
	}{
		{"alive2 trailing", new(wire.Alive2Resp), []byte{0x79, 0, 0, 1, 0}, wire.ErrTrailingData, "ALIVE2_RESP", "end", 4},
		{"alive2 creation short", new(wire.Alive2Resp), []byte{0x79, 0, 0}, wire.ErrTruncated, "ALIVE2_RESP", "Creation", 2},
		{"alive2_x trailing", new(wire.Alive2XResp), []byte{0x76, 0, 0, 0, 0, 1, 0}, wire.ErrTrailingData, "ALIVE2_X_RESP", "end", 6},
		{"alive2_x result missing", new(wire.Alive2XResp), []byte{0x76}, wire.ErrTruncated, "ALIVE2_X_RESP", "Result", 1},
		{"alive2_x creation short", new(wire.Alive2XResp), []byte{0x76, 0, 0, 0, 0}, wire.ErrTruncated, "ALIVE2_X_RESP", "Creation", 2},
		{"alive2 given a v reply", new(wire.Alive2Resp), []byte{0x76, 0, 0, 0, 0, 1}, wire.ErrUnknownTag, "ALIVE2_RESP", "tag", 0},

		{"port2 not found trailing", new(wire.Port2Resp), []byte{0x77, 0x01, 0x00}, wire.ErrTrailingData, "PORT2_RESP", "end", 2},
		{"port2 result missing", new(wire.Port2Resp), []byte{0x77}, wire.ErrTruncated, "PORT2_RESP", "Result", 1},
		{"port2 PortNo short", new(wire.Port2Resp), []byte{0x77, 0, 0x15}, wire.ErrTruncated, "PORT2_RESP", "PortNo", 2},
		{"port2 NodeType missing", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3}, wire.ErrTruncated, "PORT2_RESP", "NodeType", 4},
		{"port2 Protocol missing", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77}, wire.ErrTruncated, "PORT2_RESP", "Protocol", 5},
		{"port2 High short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0}, wire.ErrTruncated, "PORT2_RESP", "HighestVersion", 6},
		{"port2 Low short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0}, wire.ErrTruncated, "PORT2_RESP", "LowestVersion", 8},
		{"port2 Nlen short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0}, wire.ErrTruncated, "PORT2_RESP", "Nlen", 10},
		{"port2 name short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0, 2, 'a'}, wire.ErrTruncated, "PORT2_RESP", "NodeName", 12},
		{"port2 Elen short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0, 1, 'a', 0}, wire.ErrTruncated, "PORT2_RESP", "Elen", 13},
		{"port2 extra short", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0, 1, 'a', 0, 2, 'e'}, wire.ErrTruncated, "PORT2_RESP", "Extra", 15},
		{"port2 found trailing", new(wire.Port2Resp), []byte{0x77, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0, 1, 'a', 0, 0, 'j', 'k'}, wire.ErrTrailingData, "PORT2_RESP", "end", 15},

		{"names short port", new(wire.NamesResp), []byte{0, 0, 0x38}, wire.ErrTruncated, "NAMES reply", "Port", 0},
		{"names nothing", new(wire.NamesResp), nil, wire.ErrTruncated, "NAMES reply", "Port", 0},
		{"names line without newline", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("name a at port 1\nname b at port 2")), wire.ErrTruncated, "NAMES reply", "line", 21},
		{"names line without name prefix", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("nome a at port 1\n")), wire.ErrInvalid, "NAMES reply", "line", 4},
		{"names line without at port", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("name a port 1\n")), wire.ErrInvalid, "NAMES reply", "line", 4},
		{"names bad port", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("name a at port x\n")), wire.ErrInvalid, "NAMES reply", "port", 4},
		{"names port over 65535", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("name a at port 65536\n")), wire.ErrInvalid, "NAMES reply", "port", 4},
		{"names empty port", new(wire.NamesResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("name a at port \n")), wire.ErrInvalid, "NAMES reply", "port", 4},

		{"dump short port", new(wire.DumpResp), []byte{0, 0}, wire.ErrTruncated, "DUMP reply", "Port", 0},
		{"dump entry without NUL", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name     <a> at port 1, fd = 5\n")), wire.ErrTruncated, "DUMP reply", "entry", 4},
		{"dump active after old", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21},
			[]byte("old/unused name <b>, port = 2, fd = 6 \n\x00"),
			[]byte("active name     <a> at port 1, fd = 5\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 44},
		{"dump unrecognised", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("hello\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump old without space before newline", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("old/unused name <b>, port = 2, fd = 6\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump active without newline", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name     <a> at port 1, fd = 5\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump four spaces", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name    <a> at port 1, fd = 5\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump no fd", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name     <a> at port 1\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump bad fd", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name     <a> at port 1, fd = x\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump no port", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("active name     <a>, fd = 5\n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},
		{"dump bad port", new(wire.DumpResp), cat([]byte{0, 0, 0x38, 0x21}, []byte("old/unused name <b>, port = 70000, fd = 6 \n\x00")), wire.ErrInvalid, "DUMP reply", "entry", 4},

		{"kill empty", new(wire.KillResp), nil, wire.ErrTruncated, "KILL reply", "reply", 0},
		{"kill one byte", new(wire.KillResp), []byte("O"), wire.ErrTruncated, "KILL reply", "reply", 1},
		{"kill lower case", new(wire.KillResp), []byte("ok"), wire.ErrInvalid, "KILL reply", "reply", 0},
		{"kill trailing", new(wire.KillResp), []byte("OK\n"), wire.ErrInvalid, "KILL reply", "reply", 0},

		{"stop empty", new(wire.StopResp), nil, wire.ErrTruncated, "STOP reply", "reply", 0},
		{"stop short", new(wire.StopResp), []byte("STOP"), wire.ErrTruncated, "STOP reply", "reply", 4},
		{"stop NOEXIST cut", new(wire.StopResp), []byte("NOEXISTSTO"), wire.ErrTruncated, "STOP reply", "reply", 10},
		{"stop trailing", new(wire.StopResp), []byte("STOPPED\n"), wire.ErrInvalid, "STOP reply", "reply", 0},
		{"stop garbage", new(wire.StopResp), []byte("GARBAGE"), wire.ErrInvalid, "STOP reply", "reply", 0},
		{"stop NOEXIST twice", new(wire.StopResp), []byte("NOEXISTNOEXIST"), wire.ErrInvalid, "STOP reply", "reply", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dst.UnmarshalBinary(tt.body)
			wantDecodeError(t, err, tt.err, tt.msg, tt.field, tt.offset)
		})
	}
}

// TestResponseDecodeNames covers the name parsing rules of NAMES and DUMP:
// the separator is the last one on the line, so names may contain it.
func TestResponseDecodeNames(t *testing.T) {
	t.Run("names", func(t *testing.T) {
		body := cat(
			[]byte{0x00, 0x00, 0x11, 0x11},            // Port 4369
			[]byte("name with space at port 1\n"),     // space in the name
			[]byte("name x at port 2 at port 3\n"),    // separator in the name
			[]byte("name a@b.c at port 65535\n"),      // largest port
			[]byte("name \xff\x00 at port 0\n"),       // any byte but '\n'
			[]byte("name leading zero at port 007\n"), // decodes, re-encodes as 7
		)
		want := &wire.NamesResp{Port: 4369, Nodes: []wire.NameEntry{
			{Name: "with space", Port: 1},
			{Name: "x at port 2", Port: 3},
			{Name: "a@b.c", Port: 65535},
			{Name: "\xff\x00", Port: 0},
			{Name: "leading zero", Port: 7},
		}}
		got := new(wire.NamesResp)
		if err := got.UnmarshalBinary(body); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
		}
	})
	t.Run("dump", func(t *testing.T) {
		body := cat(
			[]byte{0x00, 0x00, 0x11, 0x11},                                           // Port 4369
			[]byte("active name     <a> at port 1, fd = 2> at port 3, fd = 4\n\x00"), // separators in the name
			[]byte("active name     <<>> at port 5, fd = -1\n\x00"),                  // brackets in the name, negative fd
			[]byte("old/unused name <b>, port = 6, fd = 7 >, port = 8, fd = 9 \n\x00"),
		)
		want := &wire.DumpResp{Port: 4369,
			Active: []wire.DumpEntry{
				{Name: "a> at port 1, fd = 2", Port: 3, Fd: 4},
				{Name: "<>", Port: 5, Fd: -1},
			},
			Old: []wire.DumpEntry{{Name: "b>, port = 6, fd = 7 ", Port: 8, Fd: 9}},
		}
		got := new(wire.DumpResp)
		if err := got.UnmarshalBinary(body); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
		}
	})
	t.Run("decode replaces old contents", func(t *testing.T) {
		n := &wire.NamesResp{Port: 1, Nodes: []wire.NameEntry{{Name: "stale"}}}
		if err := n.UnmarshalBinary([]byte{0, 0, 0, 2}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&wire.NamesResp{Port: 2}, n, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("NamesResp (-want +got):\n%s", diff)
		}
		d := &wire.DumpResp{Port: 1, Active: []wire.DumpEntry{{Name: "stale"}}, Old: []wire.DumpEntry{{Name: "stale"}}}
		if err := d.UnmarshalBinary([]byte{0, 0, 0, 2}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&wire.DumpResp{Port: 2}, d, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("DumpResp (-want +got):\n%s", diff)
		}
		p := &wire.Port2Resp{Node: wire.Node{Name: "stale"}}
		if err := p.UnmarshalBinary([]byte{0x77, 0x01}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&wire.Port2Resp{Result: 1}, p); diff != "" {
			t.Errorf("Port2Resp (-want +got):\n%s", diff)
		}
	})
}

// TestResponseLineHelpers pins the per-entry helpers the server writes one
// at a time (stock epmd writes each line or entry separately).
func TestResponseLineHelpers(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"name line", wire.AppendNameLine([]byte(">"), "alpha", 5555), ">name alpha at port 5555\n"},
		{"name line port 0", wire.AppendNameLine(nil, "a", 0), "name a at port 0\n"},
		{"dump active", wire.AppendDumpActive([]byte(">"), wire.DumpEntry{Name: "alpha", Port: 5555, Fd: 5}),
			">active name     <alpha> at port 5555, fd = 5\n\x00"},
		{"dump old", wire.AppendDumpOld([]byte(">"), wire.DumpEntry{Name: "beta", Port: 6666, Fd: 6}),
			">old/unused name <beta>, port = 6666, fd = 6 \n\x00"},
		{"dump old large fd", wire.AppendDumpOld(nil, wire.DumpEntry{Name: "n", Port: 65535, Fd: 1023}),
			"old/unused name <n>, port = 65535, fd = 1023 \n\x00"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, string(tt.got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestPort2RespEncodeRefuses(t *testing.T) {
	long := strings.Repeat("a", 0x10000)
	for _, n := range []wire.Node{{Name: long}, {Name: "a", Extra: long}} {
		got, err := (&wire.Port2Resp{Node: n}).AppendBinary([]byte("keep"))
		wantDecodeError(t, err, wire.ErrTooLarge, "PORT2_RESP", "", -1)
		if string(got) != "keep" {
			t.Errorf("AppendBinary changed b to %q", got)
		}
	}
	// A not-found reply never carries the node, whatever is in it.
	got, err := (&wire.Port2Resp{Result: 1, Node: wire.Node{Name: long}}).AppendBinary(nil)
	if err != nil || string(got) != "w\x01" {
		t.Errorf("not-found AppendBinary = %q, %v; want \"w\\x01\", nil", got, err)
	}
}
