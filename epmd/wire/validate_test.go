package wire_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"

	"github.com/gopmd/gopmd/epmd/wire"
)

// reasonOf returns the ValidationError reason of err, "" for nil.
func reasonOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ve *wire.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %T (%v), want *wire.ValidationError", err, err)
	}
	if !strings.HasPrefix(err.Error(), "epmd: ") {
		t.Errorf("Error() = %q, want prefix \"epmd: \"", err.Error())
	}
	return ve.Reason
}

const (
	fourByte  = "\U0001F600" // 😀, 4 bytes
	threeByte = "\u20ac"     // €, 3 bytes
	twoByte   = "\u00e9"     // é, 2 bytes
)

// invalidUTF8 are the encodings verify_utf8 in stock epmd rejects (facts §4.1).
var invalidUTF8 = []struct {
	name string
	s    string
}{
	{"ff fe", "\xff\xfe"},
	{"overlong NUL c0 80", "\xc0\x80"},
	{"overlong slash c1 af", "\xc1\xaf"},
	{"overlong e0 80 af", "\xe0\x80\xaf"},
	{"overlong f0 80 80 af", "\xf0\x80\x80\xaf"},
	{"surrogate ed a0 80", "\xed\xa0\x80"},
	{"surrogate ed bf bf", "\xed\xbf\xbf"},
	{"above U+10FFFF f4 90 80 80", "\xf4\x90\x80\x80"},
	{"f5 lead", "\xf5\x80\x80\x80"},
	{"truncated 2-byte", "a\xc3"},
	{"truncated 3-byte", "\xe2\x82"},
	{"truncated 4-byte", "\xf0\x9f\x98"},
	{"truncated then ASCII", "\xf0\x9f\x98a"},
	{"lone continuation", "\x80"},
	{"valid then invalid", "alpha\xff"},
}

func TestCheckAlive2(t *testing.T) {
	tests := []struct {
		name  string
		node  wire.Node
		want  string // reason, "" for accepted
		chars int    // NameChars(node.Name)
	}{
		{"ordinary", wire.Node{Name: "alpha"}, "", 5},
		{"empty name gets through as stock", wire.Node{Name: "", Extra: "x"}, "", 0},
		{"spaces and punctuation", wire.Node{Name: "a b@c.d\n"}, "", 8},
		{"255 ASCII", wire.Node{Name: strings.Repeat("a", 255)}, "", 255},
		{"256 ASCII", wire.Node{Name: strings.Repeat("a", 256)}, wire.ReasonNameTooLong, 256},
		{"255 two-byte", wire.Node{Name: strings.Repeat(twoByte, 255)}, "", 255},
		{"256 two-byte", wire.Node{Name: strings.Repeat(twoByte, 256)}, wire.ReasonNameTooLong, 256},
		{"255 three-byte", wire.Node{Name: strings.Repeat(threeByte, 255)}, "", 255},
		{"255 four-byte = 1020 bytes", wire.Node{Name: strings.Repeat(fourByte, 255)}, "", 255},
		{"1021 bytes", wire.Node{Name: strings.Repeat(fourByte, 255) + "a"}, wire.ReasonNameTooLong, 256},
		{"1021 bytes, 255 chars are impossible: 254 four-byte + 5", wire.Node{Name: strings.Repeat(fourByte, 254) + "abcde"}, wire.ReasonNameTooLong, 259},
		{"too long in bytes and invalid: byte check first", wire.Node{Name: strings.Repeat("\xff", 1021)}, wire.ReasonNameTooLong, -1},
		{"1020 invalid bytes", wire.Node{Name: strings.Repeat("\xff", 1020)}, wire.ReasonBadNameEncoding, -1},
		{"extra 1020", wire.Node{Name: "a", Extra: strings.Repeat("\x00", 1020)}, "", 1},
		{"extra 1021", wire.Node{Name: "a", Extra: strings.Repeat("e", 1021)}, wire.ReasonExtraTooLong, 1},
		{"extra not UTF-8 checked", wire.Node{Name: "a", Extra: "\xff\xfe"}, "", 1},
		{"bad name before long extra", wire.Node{Name: "\xff", Extra: strings.Repeat("e", 1021)}, wire.ReasonBadNameEncoding, -1},
		{"long name before long extra", wire.Node{Name: strings.Repeat("a", 256), Extra: strings.Repeat("e", 1021)}, wire.ReasonNameTooLong, 256},
	}
	for _, tt := range invalidUTF8 {
		tests = append(tests, struct {
			name  string
			node  wire.Node
			want  string
			chars int
		}{"invalid " + tt.name, wire.Node{Name: tt.s}, wire.ReasonBadNameEncoding, -1})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(t, wire.CheckAlive2(&tt.node)); got != tt.want {
				t.Errorf("CheckAlive2 reason = %q, want %q", got, tt.want)
			}
			if got := wire.NameChars(tt.node.Name); got != tt.chars {
				t.Errorf("NameChars = %d, want %d", got, tt.chars)
			}
		})
	}
}

// TestCheckLookupName: PORT_PLEASE2 names. Stock counts the terminating
// NUL as a character and refuses 255-character names; gopmd deliberately
// accepts them (see CheckLookupName).
func TestCheckLookupName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"ordinary", "alpha", ""},
		{"254 ASCII", strings.Repeat("a", 254), ""},
		{"255 ASCII, refused by stock", strings.Repeat("a", 255), ""},
		{"256 ASCII", strings.Repeat("a", 256), wire.ReasonNameTooLong},
		{"255 four-byte", strings.Repeat(fourByte, 255), ""},
		{"256 four-byte", strings.Repeat(fourByte, 256), wire.ReasonNameTooLong},
		{"long invalid", strings.Repeat("\xff", 2000), wire.ReasonBadNameEncoding},
	}
	for _, tt := range invalidUTF8 {
		tests = append(tests, struct {
			name string
			in   string
			want string
		}{"invalid " + tt.name, tt.s, wire.ReasonBadNameEncoding})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reasonOf(t, wire.CheckLookupName(tt.in)); got != tt.want {
				t.Errorf("CheckLookupName reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestValidationErrorMessage pins the details to the words stock epmd logs
// (node_reg2 in epmd_srv.c): a name too long in characters is reported with
// its length in bytes, and the extra data is printed as a C string.
func TestValidationErrorMessage(t *testing.T) {
	err := wire.CheckLookupName("\xff")
	if got, want := err.Error(), "epmd: invalid node name encoding"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	tests := []struct {
		node wire.Node
		want string
	}{
		{wire.Node{Name: "a", Extra: strings.Repeat("e", 1021)}, "extra data is too long (1021) " + strings.Repeat("e", 1021)},
		{wire.Node{Name: "a", Extra: "ab\x00" + strings.Repeat("e", 1021)}, "extra data is too long (1024) ab"},
		{wire.Node{Name: strings.Repeat("a", 1021)}, "node name is too long (1021) " + strings.Repeat("a", 1021)},
		{wire.Node{Name: strings.Repeat("\u00e9", 256)}, "node name is too long (512) " + strings.Repeat("\u00e9", 256)},
		{wire.Node{Name: "\xc0\x80"}, "invalid node name encoding"},
	}
	for _, tt := range tests {
		var ve *wire.ValidationError
		if !errors.As(wire.CheckAlive2(&tt.node), &ve) || ve.Detail != tt.want {
			t.Errorf("CheckAlive2(%.20q): %v, want detail %.60q", tt.node.Name, ve, tt.want)
		}
	}
}

// modelNameChars is an independent RFC 3629 decoder written from the table
// in section 4 of the RFC, without unicode/utf8.
func modelNameChars(b []byte) int {
	n := 0
	for i := 0; i < len(b); n++ {
		c := b[i]
		var size int
		var r, lowest rune
		switch {
		case c < 0x80:
			i++
			continue
		case c&0xe0 == 0xc0:
			size, r, lowest = 2, rune(c&0x1f), 0x80
		case c&0xf0 == 0xe0:
			size, r, lowest = 3, rune(c&0x0f), 0x800
		case c&0xf8 == 0xf0:
			size, r, lowest = 4, rune(c&0x07), 0x10000
		default:
			return -1 // continuation byte or 0xf8..0xff as a lead
		}
		if i+size > len(b) {
			return -1 // truncated sequence
		}
		for _, cc := range b[i+1 : i+size] {
			if cc&0xc0 != 0x80 {
				return -1
			}
			r = r<<6 | rune(cc&0x3f)
		}
		if r < lowest || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff) {
			return -1 // overlong, out of range, or surrogate
		}
		i += size
	}
	return n
}

// nameBytes draws byte strings that hit the interesting corners of UTF-8
// often: ASCII, valid runes of every size, lead bytes with random
// continuations (overlongs, surrogates, > U+10FFFF, truncation) and noise.
var nameBytes = rapid.Custom(func(t *rapid.T) []byte {
	pieces := rapid.SliceOfN(rapid.IntRange(0, 4), 0, 20).Draw(t, "kinds")
	var b []byte
	for _, k := range pieces {
		switch k {
		case 0:
			b = append(b, rapid.ByteRange(0, 0x7f).Draw(t, "ascii"))
		case 1:
			b = utf8.AppendRune(b, rapid.Rune().Draw(t, "rune"))
		case 2:
			b = utf8.AppendRune(b, rapid.SampledFrom([]rune{0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff}).Draw(t, "edge"))
		case 3:
			b = append(b, rapid.SampledFrom([]byte{0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xf8, 0xff}).Draw(t, "lead"))
			for range rapid.IntRange(0, 3).Draw(t, "ncont") {
				b = append(b, rapid.SampledFrom([]byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}).Draw(t, "cont"))
			}
		default:
			b = append(b, rapid.Byte().Draw(t, "byte"))
		}
	}
	return b
})

func TestNameCharsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := nameBytes.Draw(t, "name")
		if got, want := wire.NameChars(string(b)), modelNameChars(b); got != want {
			t.Fatalf("NameChars(% x) = %d, model says %d", b, got, want)
		}
	})
}

// TestModelNameChars keeps the model honest on the fixed cases.
func TestModelNameChars(t *testing.T) {
	for _, tt := range invalidUTF8 {
		if got := modelNameChars([]byte(tt.s)); got != -1 {
			t.Errorf("model(%s) = %d, want -1", tt.name, got)
		}
	}
	for s, want := range map[string]int{"": 0, "a": 1, twoByte + threeByte + fourByte: 3, "\x00\x7f": 2, "\U0010ffff\ud7ff\ue000": 3} {
		if got := modelNameChars([]byte(s)); got != want {
			t.Errorf("model(%q) = %d, want %d", s, got, want)
		}
	}
}
