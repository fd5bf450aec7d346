package fuzz_test

import (
	"strings"

	"github.com/gopmd/gopmd/epmd/wire"
)

// Seeds shared by the targets: the requests and replies of the stock
// transcripts (docs: epmd-protocol-facts §4 and §14, captured from the OTP 25
// daemon on port 14369) and the canonical encodings of every message.

// cat concatenates byte slices and strings into one slice.
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		default:
			panic("cat: unsupported part")
		}
	}
	return b
}

// frame prefixes body with its length, whatever that length is.
func frame(body []byte) []byte {
	return wire.AppendRawFrame(nil, uint16(len(body)), body)
}

// alive2Body builds an ALIVE2_REQ payload field by field, with no checks, so
// that broken Nlen and Elen values can be written too.
func alive2Body(port uint16, typ, proto byte, high, low uint16, nlen uint16, name string, elen uint16, extra string) []byte {
	return cat(
		byte(wire.TagAlive2Req),
		byte(port>>8), byte(port),
		typ, proto,
		byte(high>>8), byte(high),
		byte(low>>8), byte(low),
		byte(nlen>>8), byte(nlen), name,
		byte(elen>>8), byte(elen), extra,
	)
}

// alive2 is a well-formed ALIVE2_REQ payload.
func alive2(port uint16, typ byte, high, low uint16, name, extra string) []byte {
	return alive2Body(port, typ, 0, high, low, uint16(len(name)), name, uint16(len(extra)), extra)
}

// requestSeeds are request payloads (no length header): every request of
// the stock transcripts, valid or not.
func requestSeeds() [][]byte {
	return [][]byte{
		[]byte("n"),                          // NAMES
		[]byte("d"),                          // DUMP
		[]byte("k"),                          // KILL
		alive2(5555, 'M', 6, 5, "alpha", ""), // ALIVE2 v6 "alpha" :5555 -> 76 00 ...
		alive2(6666, 'H', 5, 5, "beta", "EXTRA\x00x"),       // ALIVE2 v5 "beta" :6666, type 72, extra
		alive2(40367, 'M', 6, 5, "probe1", ""),              // a real OTP 25 node (erl -sname probe1)
		alive2(7777, 'h', 6, 6, "cnode", ""),                // what erl_interface sends
		[]byte("zalpha"),                                    // PORT2 "alpha" -> 77 00 ...
		[]byte("zbeta\x00"),                                 // PORT2 "beta\0": one trailing NUL tolerated
		[]byte("zgamma"),                                    // PORT2 unknown -> 77 01
		cat("n", strings.Repeat("J", wire.MaxRequestLen-1)), // len 3057 'n'+junk -> answered
		[]byte("a.."), []byte("p.."), []byte("Q"), {0},      // legacy and garbage tags
		[]byte("z"), []byte("z\x00"), []byte("zfo\x00o"), []byte("z\xff"), // PORT2 silent closes
		cat("z", strings.Repeat("a", 255)), cat("z", strings.Repeat("a", 254)),
		alive2Body(1, 'M', 0, 6, 5, 0, "", 0, ""),            // 13 bytes: Nlen 0, Elen 0 -> dropped
		alive2Body(1, 'M', 0, 6, 5, 9, "abc", 0, ""),         // Nlen larger than the data
		alive2Body(1, 'M', 0, 6, 5, 3, "abc", 9, "x"),        // Elen larger than the data
		alive2(1, 'M', 6, 5, "a\x00b", ""),                   // NUL inside the name
		alive2(1, 'M', 6, 5, "abc\x00", ""),                  // NUL-terminated name
		alive2(1, 'M', 6, 5, "\xff\xfe", ""),                 // invalid UTF-8 -> 76 01 ...
		alive2(1, 'M', 6, 5, strings.Repeat("a", 256), ""),   // 256 characters -> 76 01 ...
		alive2(1, 'M', 6, 5, "x", strings.Repeat("e", 1021)), // extra 1021 -> 76 01 ...
		alive2(1, 'M', 6, 5, "", "x"),                        // empty name, Elen 1: registered
		cat(alive2Body(1, 'M', 0, 6, 5, 0, "", 0, ""), 0),    // empty name and extra + 1 junk byte
		cat(alive2(1, 'M', 6, 5, "tail", ""), "junk"),        // bytes after Extra are ignored
		[]byte("sfoo"), []byte("sxxx42"), []byte("s"), []byte("s\x00"), []byte("sfoo\x00junk"),
	}
}

// frameSeeds are whole client transmissions, length headers included: every
// request seed framed, plus the framing cases of the transcripts.
func frameSeeds() [][]byte {
	var out [][]byte
	for _, b := range requestSeeds() {
		out = append(out, frame(b))
	}
	names := frame([]byte("n"))
	out = append(out,
		[]byte{0, 0},           // zero length -> EOF, nothing
		[]byte{0, 0, 'n'},      // zero length with more bytes
		[]byte{0xff, 0xff},     // length 65535 -> closed
		cat(0x0b, 0xf2, "n"),   // length 3058 -> closed
		cat(names, names),      // NAMES+NAMES in one send -> nothing
		cat(names, 0),          // NAMES + 1 stray byte -> nothing
		[]byte{0},              // one byte only
		[]byte{0, 1},           // header only
		[]byte{0, 5, 'z', 'a'}, // header + partial payload
		cat(frame(alive2(5555, 'M', 6, 5, "alpha", "")), names),                 // ALIVE2 + another frame
		cat(frame(cat("n", strings.Repeat("J", wire.MaxRequestLen-1))), "more"), // 3057 + extra: executed
	)
	return out
}

// replySeeds are daemon replies from the stock transcripts, as a client
// reads them up to EOF (or, for ALIVE2, the fixed size).
func replySeeds() [][]byte {
	return [][]byte{
		{0x00, 0x00, 0x38, 0x21}, // NAMES or DUMP, empty
		{0x76, 0x00, 0x6b, 0x02, 0xb1, 0xb1},
		{0x79, 0x00, 0x00, 0x02},
		{0x76, 0x01, 0x00, 0x00, 0x00, 0x63},
		{0x79, 0x01, 0x00, 0x63},
		{0x76, 0x00, 0x6b, 0x02, 0xb2, 0x87}, // probe1's reply
		cat(0x77, 0x00, 0x15, 0xb3, 0x4d, 0x00, 0x00, 0x06, 0x00, 0x05, 0x00, 0x05, "alpha", 0x00, 0x00),
		cat(0x77, 0x00, 0x1a, 0x0a, 0x48, 0x00, 0x00, 0x05, 0x00, 0x05, 0x00, 0x04, "beta", 0x00, 0x07, "EXTRA\x00x"),
		{0x77, 0x01},
		cat(0x00, 0x00, 0x38, 0x21, "name beta at port 6666\n", "name alpha at port 5555\n"),
		cat(0x00, 0x00, 0x38, 0x21, "active name     <beta> at port 6666, fd = 6\n\x00",
			"active name     <alpha> at port 5555, fd = 5\n\x00"),
		cat(0x00, 0x00, 0x38, 0x21, "active name     <alpha> at port 5555, fd = 5\n\x00",
			"old/unused name <beta>, port = 6666, fd = 6 \n\x00"),
		[]byte("NO"), []byte("OK"),
		[]byte("STOPPED"), []byte("NOEXISTSTOPPED"), []byte("NOEXIST"),
		{0x00, 0x00, 0x38, 0x23},                         // len 3057 NAMES on -port 14371
		{0x00, 0x01, 0x11, 0x70},                         // -port 70000
		{0x00, 0x00, 0x11, 0x11},                         // -systemd, no -port
		cat(0x00, 0x00, 0x38, 0x21, "name  at port 1\n"), // empty name
	}
}
