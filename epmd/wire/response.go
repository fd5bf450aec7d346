package wire

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
)

// Response is a reply from epmd. Replies have no length header: ALIVE2
// replies have a fixed size, every other reply ends when the daemon closes
// the connection.
type Response interface {
	AppendBinary(b []byte) ([]byte, error)
	isResponse()
}

// Alive2Resp is the registration reply with a 16-bit creation (ALIVE2_RESP,
// 'y'), sent when the request's HighestVersion is below 6.
type Alive2Resp struct {
	Result   uint8 // 0 = registered, 1 = refused
	Creation uint16
}

// Alive2XResp is the registration reply with a 32-bit creation
// (ALIVE2_X_RESP, 'v'), sent when the request's HighestVersion is 6 or more.
type Alive2XResp struct {
	Result   uint8
	Creation uint32
}

// Port2Resp answers PORT_PLEASE2_REQ ('w'). Result 0 carries the node; any
// other result is two bytes only.
type Port2Resp struct {
	Result uint8
	Node   Node
}

// NameEntry is one line of a NAMES reply.
type NameEntry struct {
	Name string
	Port uint16
}

// NamesResp answers NAMES_REQ: the daemon's configured port as 4 bytes, then
// one line "name NAME at port PORT\n" per registered node, newest first.
type NamesResp struct {
	Port  uint32 // the configured port (what -port said), not the socket's
	Nodes []NameEntry
}

// DumpEntry is one entry of a DUMP reply.
type DumpEntry struct {
	Name string
	Port uint16
	Fd   int // the daemon's file descriptor of the node's connection
}

// DumpResp answers DUMP_REQ: the configured port, then each registered node
// (newest first), then each remembered node (oldest first), every entry
// ending in a NUL byte.
type DumpResp struct {
	Port   uint32
	Active []DumpEntry
	Old    []DumpEntry
}

// KillResp answers KILL_REQ: "OK" (the daemon exits) or "NO".
type KillResp struct {
	OK bool
}

// StopResp answers STOP_REQ. Stock epmd answers an unknown name with
// "NOEXIST" immediately followed by "STOPPED" (a long-standing bug that
// clients survive because they read 7 bytes); the encoder copies that.
type StopResp struct {
	Stopped bool
}

func (*Alive2Resp) isResponse()  {}
func (*Alive2XResp) isResponse() {}
func (*Port2Resp) isResponse()   {}
func (*NamesResp) isResponse()   {}
func (*DumpResp) isResponse()    {}
func (*KillResp) isResponse()    {}
func (*StopResp) isResponse()    {}

func (m *Alive2Resp) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(TagAlive2Resp), m.Result)
	return appendU16(b, m.Creation), nil
}

func (m *Alive2XResp) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(TagAlive2XResp), m.Result)
	return appendU32(b, m.Creation), nil
}

// UnmarshalBinary decodes exactly four bytes.
func (m *Alive2Resp) UnmarshalBinary(b []byte) error {
	const msg = "ALIVE2_RESP"
	if err := checkTag(msg, b, TagAlive2Resp); err != nil {
		return err
	}
	rest := b[1:]
	res, rest, ok := u8(rest)
	if !ok {
		return errAt(msg, "Result", 1, ErrTruncated, "")
	}
	cr, rest, ok := u16(rest)
	if !ok {
		return errAt(msg, "Creation", 2, ErrTruncated, "")
	}
	if len(rest) != 0 {
		return errAt(msg, "end", 4, ErrTrailingData, "")
	}
	m.Result, m.Creation = res, cr
	return nil
}

// UnmarshalBinary decodes exactly six bytes.
func (m *Alive2XResp) UnmarshalBinary(b []byte) error {
	const msg = "ALIVE2_X_RESP"
	if err := checkTag(msg, b, TagAlive2XResp); err != nil {
		return err
	}
	rest := b[1:]
	res, rest, ok := u8(rest)
	if !ok {
		return errAt(msg, "Result", 1, ErrTruncated, "")
	}
	cr, rest, ok := u32(rest)
	if !ok {
		return errAt(msg, "Creation", 2, ErrTruncated, "")
	}
	if len(rest) != 0 {
		return errAt(msg, "end", 6, ErrTrailingData, "")
	}
	m.Result, m.Creation = res, cr
	return nil
}

// Alive2ReplyLen returns the size of an ALIVE2 reply given its first byte,
// or 0 when the byte is neither 'y' nor 'v'.
func Alive2ReplyLen(tag byte) int {
	switch Tag(tag) {
	case TagAlive2Resp:
		return 4
	case TagAlive2XResp:
		return 6
	}
	return 0
}

// DecodeAlive2Reply decodes either registration reply and returns the
// result and the creation widened to 32 bits.
func DecodeAlive2Reply(b []byte) (result uint8, creation uint32, err error) {
	if len(b) == 0 {
		return 0, 0, errAt("ALIVE2 reply", "tag", 0, ErrTruncated, "")
	}
	switch Tag(b[0]) {
	case TagAlive2Resp:
		var m Alive2Resp
		if err := m.UnmarshalBinary(b); err != nil {
			return 0, 0, err
		}
		return m.Result, uint32(m.Creation), nil
	case TagAlive2XResp:
		var m Alive2XResp
		if err := m.UnmarshalBinary(b); err != nil {
			return 0, 0, err
		}
		return m.Result, m.Creation, nil
	}
	return 0, 0, errAt("ALIVE2 reply", "tag", 0, ErrUnknownTag, Tag(b[0]).String())
}

// AppendBinary appends the reply. A found node echoes every registered field;
// Elen is always present, 00 00 for empty extra.
func (m *Port2Resp) AppendBinary(b []byte) ([]byte, error) {
	if m.Result != 0 {
		return append(b, byte(TagPort2Resp), m.Result), nil
	}
	n := &m.Node
	if len(n.Name) > 0xFFFF || len(n.Extra) > 0xFFFF {
		return b, errAt("PORT2_RESP", "NodeName", 12, ErrTooLarge, "")
	}
	b = slices.Grow(b, 14+len(n.Name)+len(n.Extra)) // one allocation at most
	return appendNode(append(b, byte(TagPort2Resp), 0), n), nil
}

// UnmarshalBinary decodes a whole PORT2_RESP, strictly: no bytes may follow
// the extra field.
func (m *Port2Resp) UnmarshalBinary(b []byte) error {
	const msg = "PORT2_RESP"
	if err := checkTag(msg, b, TagPort2Resp); err != nil {
		return err
	}
	res, rest, ok := u8(b[1:])
	if !ok {
		return errAt(msg, "Result", 1, ErrTruncated, "")
	}
	if res != 0 {
		if len(rest) != 0 {
			return errAt(msg, "end", 2, ErrTrailingData, "")
		}
		*m = Port2Resp{Result: res}
		return nil
	}
	var n Node
	var nlen, elen uint16
	if n.Port, rest, ok = u16(rest); !ok {
		return errAt(msg, "PortNo", 2, ErrTruncated, "")
	}
	if n.Type, rest, ok = u8(rest); !ok {
		return errAt(msg, "NodeType", 4, ErrTruncated, "")
	}
	if n.Proto, rest, ok = u8(rest); !ok {
		return errAt(msg, "Protocol", 5, ErrTruncated, "")
	}
	if n.High, rest, ok = u16(rest); !ok {
		return errAt(msg, "HighestVersion", 6, ErrTruncated, "")
	}
	if n.Low, rest, ok = u16(rest); !ok {
		return errAt(msg, "LowestVersion", 8, ErrTruncated, "")
	}
	if nlen, rest, ok = u16(rest); !ok {
		return errAt(msg, "Nlen", 10, ErrTruncated, "")
	}
	if int(nlen) > len(rest) {
		return errAt(msg, "NodeName", 12, ErrTruncated, "")
	}
	n.Name, rest = string(rest[:nlen]), rest[nlen:]
	if elen, rest, ok = u16(rest); !ok {
		return errAt(msg, "Elen", 12+int(nlen), ErrTruncated, "")
	}
	if int(elen) > len(rest) {
		return errAt(msg, "Extra", 14+int(nlen), ErrTruncated, "")
	}
	n.Extra, rest = string(rest[:elen]), rest[elen:]
	if len(rest) != 0 {
		return errAt(msg, "end", len(b)-len(rest), ErrTrailingData, "")
	}
	*m = Port2Resp{Node: n}
	return nil
}

// digits is the length of v in decimal, a size hint for the encoders.
func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// AppendNameLine appends one NAMES line, "name NAME at port PORT\n".
func AppendNameLine(b []byte, name string, port uint16) []byte {
	b = append(b, "name "...)
	b = append(b, name...)
	b = append(b, " at port "...)
	b = strconv.AppendUint(b, uint64(port), 10)
	return append(b, '\n')
}

// AppendBinary appends the 4-byte port header and every line. It grows b
// once, to the exact size: a NAMES reply of thousands of nodes is built
// without copying it over and over.
func (m *NamesResp) AppendBinary(b []byte) ([]byte, error) {
	n := 4
	for _, e := range m.Nodes {
		n += len("name  at port \n") + len(e.Name) + digits(uint64(e.Port))
	}
	b = slices.Grow(b, n)
	b = appendU32(b, m.Port)
	for _, e := range m.Nodes {
		b = AppendNameLine(b, e.Name, e.Port)
	}
	return b, nil
}

// UnmarshalBinary decodes a whole NAMES reply (everything read until the
// daemon closed). A line's name ends at the last " at port " of the line, so
// names containing spaces decode; a name containing a newline cannot be told
// apart from two lines and is not supported.
func (m *NamesResp) UnmarshalBinary(b []byte) error {
	const msg = "NAMES reply"
	port, rest, ok := u32(b)
	if !ok {
		return errAt(msg, "Port", 0, ErrTruncated, "")
	}
	var nodes []NameEntry
	for len(rest) > 0 {
		off := len(b) - len(rest)
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return errAt(msg, "line", off, ErrTruncated, "line without newline")
		}
		line := rest[:nl]
		rest = rest[nl+1:]
		if !bytes.HasPrefix(line, []byte("name ")) {
			return errAt(msg, "line", off, ErrInvalid, "line does not start with \"name \"")
		}
		line = line[len("name "):]
		i := bytes.LastIndex(line, []byte(" at port "))
		if i < 0 {
			return errAt(msg, "line", off, ErrInvalid, "no \" at port \" in line")
		}
		p, err := strconv.ParseUint(string(line[i+len(" at port "):]), 10, 16)
		if err != nil {
			return errAt(msg, "port", off, ErrInvalid, err.Error())
		}
		nodes = append(nodes, NameEntry{Name: string(line[:i]), Port: uint16(p)})
	}
	m.Port, m.Nodes = port, nodes
	return nil
}

// AppendDumpActive appends one registered-node entry of a DUMP reply,
// NUL included.
func AppendDumpActive(b []byte, e DumpEntry) []byte {
	b = append(b, "active name     <"...)
	b = append(b, e.Name...)
	b = append(b, "> at port "...)
	b = strconv.AppendUint(b, uint64(e.Port), 10)
	b = append(b, ", fd = "...)
	b = strconv.AppendInt(b, int64(e.Fd), 10)
	return append(b, '\n', 0)
}

// AppendDumpOld appends one remembered-node entry of a DUMP reply; note the
// space before the newline, as stock epmd writes it.
func AppendDumpOld(b []byte, e DumpEntry) []byte {
	b = append(b, "old/unused name <"...)
	b = append(b, e.Name...)
	b = append(b, ">, port = "...)
	b = strconv.AppendUint(b, uint64(e.Port), 10)
	b = append(b, ", fd = "...)
	b = strconv.AppendInt(b, int64(e.Fd), 10)
	return append(b, ' ', '\n', 0)
}

// AppendBinary appends the header, the active entries, then the old ones,
// growing b once.
func (m *DumpResp) AppendBinary(b []byte) ([]byte, error) {
	n := 4
	for _, e := range m.Active {
		n += len("active name     <> at port , fd = \n\x00") + len(e.Name) + digits(uint64(e.Port)) + digits(uint64(e.Fd)) + 1
	}
	for _, e := range m.Old {
		n += len("old/unused name <>, port = , fd =  \n\x00") + len(e.Name) + digits(uint64(e.Port)) + digits(uint64(e.Fd)) + 1
	}
	b = slices.Grow(b, n)
	b = appendU32(b, m.Port)
	for _, e := range m.Active {
		b = AppendDumpActive(b, e)
	}
	for _, e := range m.Old {
		b = AppendDumpOld(b, e)
	}
	return b, nil
}

// UnmarshalBinary decodes a whole DUMP reply. Active entries must come
// before old ones, as stock epmd writes them.
func (m *DumpResp) UnmarshalBinary(b []byte) error {
	const msg = "DUMP reply"
	port, rest, ok := u32(b)
	if !ok {
		return errAt(msg, "Port", 0, ErrTruncated, "")
	}
	var active, old []DumpEntry
	for len(rest) > 0 {
		off := len(b) - len(rest)
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return errAt(msg, "entry", off, ErrTruncated, "entry without NUL")
		}
		entry := rest[:end]
		rest = rest[end+1:]
		if e, ok := parseDumpEntry(entry, "active name     <", "> at port ", "\n"); ok {
			if len(old) > 0 {
				return errAt(msg, "entry", off, ErrInvalid, "active entry after old entry")
			}
			active = append(active, e)
			continue
		}
		if e, ok := parseDumpEntry(entry, "old/unused name <", ">, port = ", " \n"); ok {
			old = append(old, e)
			continue
		}
		return errAt(msg, "entry", off, ErrInvalid, "unrecognised entry")
	}
	m.Port, m.Active, m.Old = port, active, old
	return nil
}

// parseDumpEntry parses prefix NAME mid PORT ", fd = " FD suffix.
func parseDumpEntry(s []byte, prefix, mid, suffix string) (DumpEntry, bool) {
	if !bytes.HasPrefix(s, []byte(prefix)) || !bytes.HasSuffix(s, []byte(suffix)) {
		return DumpEntry{}, false
	}
	s = s[len(prefix) : len(s)-len(suffix)]
	f := bytes.LastIndex(s, []byte(", fd = "))
	if f < 0 {
		return DumpEntry{}, false
	}
	fd, err := strconv.Atoi(string(s[f+len(", fd = "):]))
	if err != nil {
		return DumpEntry{}, false
	}
	s = s[:f]
	i := bytes.LastIndex(s, []byte(mid))
	if i < 0 {
		return DumpEntry{}, false
	}
	p, err := strconv.ParseUint(string(s[i+len(mid):]), 10, 16)
	if err != nil {
		return DumpEntry{}, false
	}
	return DumpEntry{Name: string(s[:i]), Port: uint16(p), Fd: fd}, true
}

func (m *KillResp) AppendBinary(b []byte) ([]byte, error) {
	if m.OK {
		return append(b, "OK"...), nil
	}
	return append(b, "NO"...), nil
}

// UnmarshalBinary accepts exactly "OK" or "NO".
func (m *KillResp) UnmarshalBinary(b []byte) error {
	switch string(b) {
	case "OK":
		m.OK = true
	case "NO":
		m.OK = false
	default:
		if len(b) < 2 {
			return errAt("KILL reply", "reply", len(b), ErrTruncated, "")
		}
		return errAt("KILL reply", "reply", 0, ErrInvalid, strconv.Quote(string(b)))
	}
	return nil
}

// Stop reply texts.
const (
	StopReplyStopped = "STOPPED"
	StopReplyNoExist = "NOEXIST"
)

func (m *StopResp) AppendBinary(b []byte) ([]byte, error) {
	if !m.Stopped {
		b = append(b, StopReplyNoExist...)
	}
	return append(b, StopReplyStopped...), nil
}

// UnmarshalBinary accepts "STOPPED", "NOEXIST" (what a client that reads 7
// bytes sees) and "NOEXISTSTOPPED" (what stock epmd sends).
func (m *StopResp) UnmarshalBinary(b []byte) error {
	switch string(b) {
	case StopReplyStopped:
		m.Stopped = true
	case StopReplyNoExist, StopReplyNoExist + StopReplyStopped:
		m.Stopped = false
	default:
		// A cut-off "NOEXISTSTOPPED" is truncated, not invalid.
		if len(b) < 7 || strings.HasPrefix(StopReplyNoExist+StopReplyStopped, string(b)) {
			return errAt("STOP reply", "reply", len(b), ErrTruncated, "")
		}
		return errAt("STOP reply", "reply", 0, ErrInvalid, strconv.Quote(string(b)))
	}
	return nil
}
