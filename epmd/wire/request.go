package wire

import (
	"bytes"
	"strings"
)

// Request is a decoded request payload (the bytes after the 2-byte length).
type Request interface {
	// Tag is the request's first byte.
	Tag() Tag
	// AppendBinary appends the payload, without the length header.
	AppendBinary(b []byte) ([]byte, error)
	isRequest()
}

// Alive2Req registers a node (ALIVE2_REQ, 'x').
//
//	'x' PortNo(2) NodeType(1) Protocol(1) High(2) Low(2) Nlen(2) Name Elen(2) Extra
type Alive2Req struct {
	Node
}

// PortPlease2Req asks for a node's port (PORT_PLEASE2_REQ, 'z').
type PortPlease2Req struct {
	Name string
}

// NamesReq lists the registered nodes (NAMES_REQ, 'n').
type NamesReq struct{}

// DumpReq lists registered and remembered nodes (DUMP_REQ, 'd'), local peers only.
type DumpReq struct{}

// KillReq asks the daemon to exit (KILL_REQ, 'k'), local peers only.
type KillReq struct{}

// StopReq forcibly unregisters a node (STOP_REQ, 's'), local peers only and
// only when the daemon runs with relaxed command checking.
type StopReq struct {
	Name string
}

func (*Alive2Req) Tag() Tag      { return TagAlive2Req }
func (*PortPlease2Req) Tag() Tag { return TagPortPlease2Req }
func (*NamesReq) Tag() Tag       { return TagNamesReq }
func (*DumpReq) Tag() Tag        { return TagDumpReq }
func (*KillReq) Tag() Tag        { return TagKillReq }
func (*StopReq) Tag() Tag        { return TagStopReq }

func (*Alive2Req) isRequest()      {}
func (*PortPlease2Req) isRequest() {}
func (*NamesReq) isRequest()       {}
func (*DumpReq) isRequest()        {}
func (*KillReq) isRequest()        {}
func (*StopReq) isRequest()        {}

// alive2MinLen is the smallest ALIVE2_REQ payload stock epmd accepts: it
// requires more than 13 bytes, so a request with an empty name and no extra
// (exactly 13 bytes) is dropped although it is structurally complete.
const alive2MinLen = 14

// AppendBinary appends the ALIVE2_REQ payload. It refuses what DecodeRequest
// would reject: a NUL in the name, and fields longer than a 16-bit length
// can describe.
//
// An empty name with empty extra is 13 bytes, which stock epmd drops; but
// stock (and DecodeRequest) accept it from a 14-byte payload whose last
// byte is ignored, so the encoder writes it that way, padded with one NUL.
func (m *Alive2Req) AppendBinary(b []byte) ([]byte, error) {
	const msg, tag = "ALIVE2_REQ", TagAlive2Req
	switch {
	case len(m.Name) > 0xFFFF:
		return b, reqErr(msg, tag, KindName, "NodeName", 11, ErrTooLarge, "")
	case len(m.Extra) > 0xFFFF:
		return b, reqErr(msg, tag, KindOther, "Extra", 13+len(m.Name), ErrTooLarge, "")
	case strings.IndexByte(m.Name, 0) >= 0:
		return b, reqErr(msg, tag, KindName, "NodeName", 11, ErrInvalid, "NUL in node name")
	}
	b = appendNode(append(b, byte(TagAlive2Req)), &m.Node)
	if len(m.Name)+len(m.Extra) == 0 {
		b = append(b, 0) // reach alive2MinLen; ignored by the decoder
	}
	return b, nil
}

// UnmarshalBinary decodes an ALIVE2_REQ payload with stock epmd's structural
// checks, in its order: total size, name length, extra length, NUL in the
// name. All of these are a silent close in stock epmd. The content checks
// that earn an error reply instead are in CheckAlive2.
//
// Lenient like stock: bytes after Extra are ignored.
func (m *Alive2Req) UnmarshalBinary(body []byte) error {
	const msg, tag = "ALIVE2_REQ", TagAlive2Req
	if err := checkTag(msg, body, tag); err != nil {
		return err
	}
	if len(body) < alive2MinLen {
		return reqErr(msg, tag, KindShort, "payload", len(body), ErrTruncated, "ALIVE2_REQ needs at least 14 bytes")
	}
	rest := body[1:]
	var n Node
	n.Port, rest, _ = u16(rest)
	n.Type, rest, _ = u8(rest)
	n.Proto, rest, _ = u8(rest)
	n.High, rest, _ = u16(rest)
	n.Low, rest, _ = u16(rest)
	nlen, rest, _ := u16(rest)
	// Stock: 13 + Nlen <= payload length, so Elen's two bytes must be there.
	if int(nlen)+2 > len(rest) {
		return reqErr(msg, tag, KindNameLength, "Nlen", 9, ErrTruncated, "node name longer than the request")
	}
	name := rest[:nlen]
	rest = rest[nlen:]
	elen, rest, _ := u16(rest)
	if int(elen) > len(rest) {
		return reqErr(msg, tag, KindExtraLength, "Elen", 11+int(nlen), ErrTruncated, "extra longer than the request")
	}
	if bytes.IndexByte(name, 0) >= 0 {
		return reqErr(msg, tag, KindName, "NodeName", 11, ErrInvalid, "NUL in node name")
	}
	n.Name = string(name)
	n.Extra = string(rest[:elen])
	m.Node = n
	return nil
}

// AppendBinary appends the PORT_PLEASE2_REQ payload, 'z' followed by the
// name with no terminator. It refuses an empty name and a NUL in the name.
func (m *PortPlease2Req) AppendBinary(b []byte) ([]byte, error) {
	const msg, tag = "PORT_PLEASE2_REQ", TagPortPlease2Req
	switch {
	case m.Name == "":
		return b, reqErr(msg, tag, KindName, "NodeName", 1, ErrInvalid, "empty node name")
	case strings.IndexByte(m.Name, 0) >= 0:
		return b, reqErr(msg, tag, KindName, "NodeName", 1, ErrInvalid, "NUL in node name")
	case len(m.Name) > 0xFFFE:
		return b, reqErr(msg, tag, KindName, "NodeName", 1, ErrTooLarge, "")
	}
	b = append(b, byte(TagPortPlease2Req))
	return append(b, m.Name...), nil
}

// UnmarshalBinary decodes a PORT_PLEASE2_REQ payload.
//
// Lenient like stock: one trailing NUL is stripped. What is left must be a
// non-empty name without NUL; stock epmd closes silently otherwise.
func (m *PortPlease2Req) UnmarshalBinary(body []byte) error {
	name, err := PortPlease2Name(body)
	if err != nil {
		return err
	}
	m.Name = string(name)
	return nil
}

// PortPlease2Name decodes a PORT_PLEASE2_REQ body as UnmarshalBinary does,
// with the same errors, but returns the node name as a slice of body
// instead of a new string: a server that keeps the names it has seen can
// then look a name up without allocating.
func PortPlease2Name(body []byte) ([]byte, error) {
	const msg, tag = "PORT_PLEASE2_REQ", TagPortPlease2Req
	if err := checkTag(msg, body, tag); err != nil {
		return nil, err
	}
	name := body[1:]
	if len(name) > 0 && name[len(name)-1] == 0 {
		name = name[:len(name)-1]
	}
	if len(name) == 0 {
		return nil, reqErr(msg, tag, KindName, "NodeName", 1, ErrTruncated, "empty node name")
	}
	if bytes.IndexByte(name, 0) >= 0 {
		return nil, reqErr(msg, tag, KindName, "NodeName", 1, ErrInvalid, "NUL in node name")
	}
	return name, nil
}

func (*NamesReq) AppendBinary(b []byte) ([]byte, error) { return append(b, byte(TagNamesReq)), nil }
func (*DumpReq) AppendBinary(b []byte) ([]byte, error)  { return append(b, byte(TagDumpReq)), nil }
func (*KillReq) AppendBinary(b []byte) ([]byte, error)  { return append(b, byte(TagKillReq)), nil }

// UnmarshalBinary decodes NAMES_REQ. Lenient like stock: bytes after the
// tag are ignored.
func (*NamesReq) UnmarshalBinary(body []byte) error {
	return checkTag("NAMES_REQ", body, TagNamesReq)
}

// UnmarshalBinary decodes DUMP_REQ. Lenient like stock: bytes after the tag
// are ignored.
func (*DumpReq) UnmarshalBinary(body []byte) error {
	return checkTag("DUMP_REQ", body, TagDumpReq)
}

// UnmarshalBinary decodes KILL_REQ. Lenient like stock: bytes after the tag
// are ignored.
func (*KillReq) UnmarshalBinary(body []byte) error {
	return checkTag("KILL_REQ", body, TagKillReq)
}

// AppendBinary appends the STOP_REQ payload, 's' followed by the name. The
// empty name is written as "s\x00", the only form stock epmd accepts for it.
func (m *StopReq) AppendBinary(b []byte) ([]byte, error) {
	const msg, tag = "STOP_REQ", TagStopReq
	switch {
	case strings.IndexByte(m.Name, 0) >= 0:
		return b, reqErr(msg, tag, KindName, "NodeName", 1, ErrInvalid, "NUL in node name")
	case len(m.Name) > 0xFFFE:
		return b, reqErr(msg, tag, KindName, "NodeName", 1, ErrTooLarge, "")
	}
	b = append(b, byte(TagStopReq))
	if m.Name == "" {
		return append(b, 0), nil
	}
	return append(b, m.Name...), nil
}

// UnmarshalBinary decodes STOP_REQ. Lenient like stock: the name ends at the
// first NUL or at the end of the payload ("sfoo\x00junk" stops "foo"), and
// it is not checked for UTF-8. A payload of only 's' is rejected.
func (m *StopReq) UnmarshalBinary(body []byte) error {
	const msg, tag = "STOP_REQ", TagStopReq
	if err := checkTag(msg, body, tag); err != nil {
		return err
	}
	if len(body) < 2 {
		return reqErr(msg, tag, KindName, "NodeName", 1, ErrTruncated, "STOP_REQ without a name")
	}
	name := body[1:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	m.Name = string(name)
	return nil
}

func checkTag(msg string, body []byte, want Tag) error {
	if len(body) == 0 {
		return reqErr(msg, want, KindTag, "tag", 0, ErrTruncated, "")
	}
	if Tag(body[0]) != want {
		return reqErr(msg, want, KindTag, "tag", 0, ErrUnknownTag, Tag(body[0]).String())
	}
	return nil
}

// DecodeRequest decodes one request payload (the frame without its length
// header), dispatching on the tag. Unknown tags, including the legacy
// ALIVE_REQ 'a' and PORT_PLEASE_REQ 'p' that stock epmd no longer serves,
// give ErrUnknownTag.
func DecodeRequest(body []byte) (Request, error) {
	if len(body) == 0 {
		return nil, reqErr("request", 0, KindTag, "tag", 0, ErrTruncated, "")
	}
	var r interface {
		Request
		UnmarshalBinary([]byte) error
	}
	switch Tag(body[0]) {
	case TagAlive2Req:
		r = new(Alive2Req)
	case TagPortPlease2Req:
		r = new(PortPlease2Req)
	case TagNamesReq:
		r = new(NamesReq)
	case TagDumpReq:
		r = new(DumpReq)
	case TagKillReq:
		r = new(KillReq)
	case TagStopReq:
		r = new(StopReq)
	default:
		return nil, reqErr("request", 0, KindTag, "tag", 0, ErrUnknownTag, Tag(body[0]).String())
	}
	if err := r.UnmarshalBinary(body); err != nil {
		return nil, err
	}
	return r, nil
}
