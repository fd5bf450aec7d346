// Package wire is the codec of the Erlang Port Mapper Daemon protocol: the
// request frames clients send to epmd, the replies epmd sends back, and the
// validation rules stock epmd applies to node names and extra data.
//
// The layouts follow the "EPMD Protocol" part of the Erlang distribution
// protocol guide, corrected where the stock daemon (OTP 25) does something
// else on the wire; docs/protocol.md lists every message byte by byte.
//
// Everything here is pure: no I/O, no clock. Decoders are strict and return
// a *DecodeError that names the field and offset; where stock epmd is lenient
// the decoder is lenient in the same way and the comment says so.
package wire

import (
	"errors"
	"strconv"
)

// Tag is the first byte of a request or reply payload.
type Tag byte

// Message tags ("EPMD Protocol" in the distribution protocol guide).
const (
	TagAlive2Req      Tag = 120 // 'x': register a node
	TagAlive2Resp     Tag = 121 // 'y': registration reply, 16-bit creation
	TagAlive2XResp    Tag = 118 // 'v': registration reply, 32-bit creation
	TagPortPlease2Req Tag = 122 // 'z': look a node up
	TagPort2Resp      Tag = 119 // 'w': look-up reply
	TagNamesReq       Tag = 110 // 'n': list registered nodes
	TagDumpReq        Tag = 100 // 'd': debug dump of the registry
	TagKillReq        Tag = 107 // 'k': stop the daemon
	TagStopReq        Tag = 115 // 's': forcibly unregister a node
)

var tagNames = map[Tag]string{
	TagAlive2Req:      "ALIVE2_REQ",
	TagAlive2Resp:     "ALIVE2_RESP",
	TagAlive2XResp:    "ALIVE2_X_RESP",
	TagPortPlease2Req: "PORT_PLEASE2_REQ",
	TagPort2Resp:      "PORT2_RESP",
	TagNamesReq:       "NAMES_REQ",
	TagDumpReq:        "DUMP_REQ",
	TagKillReq:        "KILL_REQ",
	TagStopReq:        "STOP_REQ",
}

// String returns the spec name with the tag's value, e.g. "ALIVE2_REQ(120 'x')".
func (t Tag) String() string {
	name, ok := tagNames[t]
	if !ok {
		name = "UNKNOWN"
	}
	if t >= 0x20 && t < 0x7f {
		return name + "(" + strconv.Itoa(int(t)) + " '" + string(rune(t)) + "')"
	}
	return name + "(" + strconv.Itoa(int(t)) + ")"
}

// Limits of stock epmd (erts/epmd/src/epmd_int.h).
const (
	// DefaultPort is the TCP port epmd listens on unless told otherwise.
	DefaultPort = 4369

	// MaxSymLen is the largest node name, and the largest extra field, in
	// bytes (MAXSYMLEN = 255 characters of at most 4 bytes).
	MaxSymLen = 1020

	// MaxNameChars is the largest node name in characters.
	MaxNameChars = 255

	// MaxRequestLen is the largest Length field stock epmd accepts: its
	// read buffer is INBUF_SIZE = 3060 bytes, the 2-byte length header
	// included and one byte kept for a terminating NUL, so Length+2 must
	// stay below 3060. Length 3058 and above closes the connection.
	MaxRequestLen = 3057

	// inBufSize is stock epmd's per-connection read buffer (INBUF_SIZE).
	inBufSize = 3060

	// ErrorCreation is the creation value sent with every failed ALIVE2 reply.
	ErrorCreation = 99
)

// Node types and protocols seen in ALIVE2_REQ. Stock epmd validates neither
// field; these are the documented conventions.
const (
	NodeNormal   uint8 = 77  // 'M'
	NodeHidden   uint8 = 72  // 'H'
	NodeHiddenEI uint8 = 104 // 'h', sent by erl_interface C nodes
	ProtoTCP4    uint8 = 0
)

// Node is what a registration carries and what a look-up returns: every
// field of ALIVE2_REQ after the tag, echoed unchanged by PORT2_RESP.
type Node struct {
	Name  string // NodeName: UTF-8, no NUL; the short name without host
	Port  uint16 // PortNo: the node's distribution listen port
	Type  uint8  // NodeType, not validated by epmd
	Proto uint8  // Protocol, not validated by epmd
	High  uint16 // HighestVersion; >= 6 selects the ALIVE2_X_RESP reply
	Low   uint16 // LowestVersion, stored and echoed only
	Extra string // opaque bytes, NULs allowed
}

// Sentinel errors. Code compares with errors.Is; a *DecodeError wraps one of
// them and says where the problem is.
var (
	ErrTruncated    = errors.New("epmd: message truncated")
	ErrTrailingData = errors.New("epmd: unexpected bytes after message")
	ErrUnknownTag   = errors.New("epmd: unknown message tag")
	ErrTooLarge     = errors.New("epmd: message too large")
	ErrFrameSize    = errors.New("epmd: invalid request length")
	ErrInvalid      = errors.New("epmd: invalid field value")
)

// DecodeError reports why a message could not be decoded or encoded.
type DecodeError struct {
	Msg    string // the message being decoded, e.g. "ALIVE2_REQ"
	Field  string // the field at fault, e.g. "Nlen"
	Offset int    // byte offset of that field in the payload
	Err    error  // one of the sentinel errors
	Detail string // optional human detail
	// Tag is the request whose decoding failed; 0 for a reply, or when
	// the tag itself was missing or unknown. Kind says what failed.
	Tag  Tag
	Kind DecodeKind
}

// DecodeKind classifies what about a request failed to decode, so that
// the daemon can word its message as stock epmd does without reading the
// error's text.
type DecodeKind uint8

const (
	KindOther       DecodeKind = iota
	KindTag                    // the tag: missing, or not the request's
	KindShort                  // the payload is shorter than the request's fixed part
	KindNameLength             // Nlen runs past the end of the request
	KindExtraLength            // Elen runs past the end of the request
	KindName                   // the node name: empty, NUL in it, too long
)

func (e *DecodeError) Error() string {
	s := e.Err.Error() + ": " + e.Msg + " field " + e.Field + " at offset " + strconv.Itoa(e.Offset)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Request returns the tag of the request that failed to decode, or 0 when
// the failure was the tag itself (empty or unknown) or a reply's.
func (e *DecodeError) Request() Tag { return e.Tag }

func errAt(msg, field string, off int, err error, detail string) error {
	return &DecodeError{Msg: msg, Field: field, Offset: off, Err: err, Detail: detail}
}

// reqErr is errAt for a request: t is its tag, 0 when unknown.
func reqErr(msg string, t Tag, kind DecodeKind, field string, off int, err error, detail string) error {
	return &DecodeError{Msg: msg, Field: field, Offset: off, Err: err, Detail: detail, Tag: t, Kind: kind}
}

// cursor helpers in the style of x/crypto/ssh: each returns the value, the
// rest of the input, and whether there were enough bytes.

func u8(b []byte) (uint8, []byte, bool) {
	if len(b) < 1 {
		return 0, b, false
	}
	return b[0], b[1:], true
}

func u16(b []byte) (uint16, []byte, bool) {
	if len(b) < 2 {
		return 0, b, false
	}
	return uint16(b[0])<<8 | uint16(b[1]), b[2:], true
}

func u32(b []byte) (uint32, []byte, bool) {
	if len(b) < 4 {
		return 0, b, false
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), b[4:], true
}

// appendNode appends a node's fields in the order ALIVE2_REQ sends them
// and PORT2_RESP echoes them: PortNo NodeType Protocol HighestVersion
// LowestVersion Nlen NodeName Elen Extra. Callers check the lengths.
func appendNode(b []byte, n *Node) []byte {
	b = appendU16(b, n.Port)
	b = append(b, n.Type, n.Proto)
	b = appendU16(b, n.High)
	b = appendU16(b, n.Low)
	b = appendU16(b, uint16(len(n.Name)))
	b = append(b, n.Name...)
	b = appendU16(b, uint16(len(n.Extra)))
	return append(b, n.Extra...)
}

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
