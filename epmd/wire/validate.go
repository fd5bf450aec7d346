package wire

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError is a registration or look-up refused for its content.
// Reason is a stable token for logs and tests; Detail is the message stock
// epmd logs for it, word for word.
type ValidationError struct {
	Reason string // "name_too_long", "bad_name_encoding", "extra_too_long"
	Detail string
}

func (e *ValidationError) Error() string { return "epmd: " + e.Detail }

// Validation reasons.
const (
	ReasonNameTooLong     = "name_too_long"
	ReasonBadNameEncoding = "bad_name_encoding"
	ReasonExtraTooLong    = "extra_too_long"
)

// NameChars returns the number of characters in s when s is valid UTF-8 as
// stock epmd's verify_utf8 understands it (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF, no truncated sequence), and -1 when
// it is not. Go's unicode/utf8 applies exactly those rules.
func NameChars(s string) int {
	if !utf8.ValidString(s) {
		return -1
	}
	return utf8.RuneCountInString(s)
}

// CheckAlive2 applies the content checks of ALIVE2_REQ in stock order
// (facts §4.1, checks 6 to 9). A failure earns the error reply, not a
// silent close; the structural checks before them live in UnmarshalBinary
// and the duplicate-name check in the registry.
func CheckAlive2(n *Node) error {
	// Stock reports a name too long in characters with its length in
	// bytes, like one too long in bytes; and prints the extra data as a C
	// string, up to its first NUL.
	tooLong := &ValidationError{ReasonNameTooLong, "node name is too long (" + strconv.Itoa(len(n.Name)) + ") " + n.Name}
	if len(n.Name) > MaxSymLen {
		return tooLong
	}
	chars := NameChars(n.Name)
	if chars < 0 {
		return &ValidationError{ReasonBadNameEncoding, "invalid node name encoding"}
	}
	if chars > MaxNameChars {
		return tooLong
	}
	if len(n.Extra) > MaxSymLen {
		extra := n.Extra
		if i := strings.IndexByte(extra, 0); i >= 0 {
			extra = extra[:i]
		}
		return &ValidationError{ReasonExtraTooLong, "extra data is too long (" + strconv.Itoa(len(n.Extra)) + ") " + extra}
	}
	return nil
}

// CheckLookupName applies PORT_PLEASE2_REQ's content check: the name must
// be valid UTF-8 of at most 255 characters. A failure is a silent close.
//
// Stock epmd runs its validator over the terminating NUL too, so it counts
// one character more and cannot look up a 255-character name that it lets
// register. gopmd resolves such names; docs/differences.md records this.
func CheckLookupName(name string) error {
	chars := NameChars(name)
	if chars < 0 {
		return &ValidationError{ReasonBadNameEncoding, "invalid node name encoding"}
	}
	if chars > MaxNameChars {
		return &ValidationError{ReasonNameTooLong, "node name is too long (" + strconv.Itoa(chars) + " characters)"}
	}
	return nil
}
