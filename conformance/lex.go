package conformance

import (
	"fmt"
	"strconv"
	"strings"
)

// A logical line of a script: continuation lines joined, comment removed,
// split into tokens.
type srcLine struct {
	first, last int       // 1-based physical line numbers
	cond        condition // which daemons the line applies to
	toks        []string
	text        string // the logical line as written, for messages
}

// splitLines turns a script into logical lines. A line ending in a
// backslash continues on the next one; '#' outside a quoted string starts a
// comment.
func splitLines(src string) ([]srcLine, error) {
	phys := strings.Split(src, "\n")
	var out []srcLine
	for i := 0; i < len(phys); i++ {
		first := i + 1
		text := stripComment(phys[i])
		for strings.HasSuffix(strings.TrimRight(text, " \t\r"), `\`) && i+1 < len(phys) {
			t := strings.TrimRight(text, " \t\r")
			i++
			text = t[:len(t)-1] + " " + stripComment(phys[i])
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		l := srcLine{first: first, last: i + 1, text: text}
		cond, rest, err := cutConditions(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", first, err)
		}
		l.cond, text = cond, rest
		toks, err := tokenize(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", first, err)
		}
		if len(toks) == 0 {
			return nil, fmt.Errorf("line %d: %s without a step", first, l.cond.text)
		}
		l.toks = toks
		out = append(out, l)
	}
	return out, nil
}

// stripComment removes a '#' comment that is not inside a quoted string.
func stripComment(s string) string {
	var q byte // the quote we are inside, 0 if none
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case q == '"' && c == '\\':
			i++
		case q == 0 && (c == '"' || c == '`'):
			q = c
		case q != 0 && c == q:
			q = 0
		case q == 0 && c == '#':
			return s[:i]
		}
	}
	return s
}

// tokenize splits on blanks; a double-quoted section (Go escapes) may hold
// blanks and is part of the surrounding token, so name="a b" is one token.
func tokenize(s string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	in := false // inside a token
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			if in {
				toks = append(toks, cur.String())
				cur.Reset()
				in = false
			}
		case c == '"' || c == '`':
			j := i + 1
			for ; j < len(s); j++ {
				if c == '"' && s[j] == '\\' {
					j++
					continue
				}
				if s[j] == c {
					break
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string in %q", s)
			}
			cur.WriteString(s[i : j+1])
			in = true
			i = j
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

// unquotePrefix reads the quoted string at the start of tok and returns its
// value and what follows the closing quote.
func unquotePrefix(tok string) (string, string, error) {
	if strings.HasPrefix(tok, "`") {
		j := strings.IndexByte(tok[1:], '`')
		if j < 0 {
			return "", "", fmt.Errorf("unterminated string %q", tok)
		}
		return tok[1 : j+1], tok[j+2:], nil
	}
	if !strings.HasPrefix(tok, `"`) {
		return "", "", fmt.Errorf("%q is not a quoted string", tok)
	}
	j := 1
	for ; j < len(tok); j++ {
		if tok[j] == '\\' {
			j++
			continue
		}
		if tok[j] == '"' {
			break
		}
	}
	if j >= len(tok) {
		return "", "", fmt.Errorf("unterminated string %q", tok)
	}
	v, err := strconv.Unquote(tok[:j+1])
	if err != nil {
		return "", "", fmt.Errorf("bad string %s: %v", tok[:j+1], err)
	}
	return v, tok[j+1:], nil
}

// word returns the text of a token that is either bare or one quoted
// string.
func word(tok string) (string, error) {
	if !strings.HasPrefix(tok, `"`) && !strings.HasPrefix(tok, "`") {
		return tok, nil
	}
	v, rest, err := unquotePrefix(tok)
	if err != nil {
		return "", err
	}
	if rest != "" {
		return "", fmt.Errorf("unexpected %q after string", rest)
	}
	return v, nil
}
