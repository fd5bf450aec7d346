package conformance

import (
	"fmt"
	"strconv"
	"strings"
)

// A condition says which daemons a script line applies to. It is written
// in brackets before the step: a flavour ([stock], [gopmd]) and/or
// conditions on the OTP release the daemon is or follows ([otp>=27],
// [otp<27], [otp=29]); several terms in one bracket ([stock otp>=27]) or
// several brackets ([stock] [otp>=27]) must all hold.
type condition struct {
	flavour string // "", Stock or Gopmd
	terms   []releaseTerm
	text    string // as written, brackets included
}

type releaseTerm struct {
	op  string // "=", "!=", "<", "<=", ">", ">="
	rel int
}

func (c condition) empty() bool { return c.flavour == "" && len(c.terms) == 0 }

// holds reports whether a line with this condition runs against a daemon
// of that flavour and release. A release condition does not hold for a
// daemon whose release is unknown (0).
func (c condition) holds(flavour string, release int) bool {
	if c.flavour != "" && c.flavour != flavour {
		return false
	}
	for _, t := range c.terms {
		if release == 0 {
			return false
		}
		var ok bool
		switch t.op {
		case "=":
			ok = release == t.rel
		case "!=":
			ok = release != t.rel
		case "<":
			ok = release < t.rel
		case "<=":
			ok = release <= t.rel
		case ">":
			ok = release > t.rel
		case ">=":
			ok = release >= t.rel
		}
		if !ok {
			return false
		}
	}
	return true
}

// addTerms parses the inside of one bracket ("stock otp>=27") into c.
func (c *condition) addTerms(inside string) error {
	words := strings.Fields(inside)
	if len(words) == 0 {
		return fmt.Errorf("empty condition []")
	}
	for _, w := range words {
		switch {
		case w == Stock || w == Gopmd:
			if c.flavour != "" && c.flavour != w {
				return fmt.Errorf("condition names both %s and %s", c.flavour, w)
			}
			c.flavour = w
		case strings.HasPrefix(w, "otp"):
			rest := w[3:]
			op := ""
			for _, o := range []string{"!=", "<=", ">=", "=", "<", ">"} {
				if strings.HasPrefix(rest, o) {
					op = o
					break
				}
			}
			if op == "" {
				return fmt.Errorf("condition %q: want otp followed by =, !=, <, <=, > or >= and a release", w)
			}
			n, err := strconv.Atoi(rest[len(op):])
			if err != nil || n < 1 || n > 999 {
				return fmt.Errorf("condition %q: want an OTP release number such as 27", w)
			}
			c.terms = append(c.terms, releaseTerm{op, n})
		default:
			return fmt.Errorf("unknown condition %q (want stock, gopmd or otpOPN such as otp>=27)", w)
		}
	}
	return nil
}

// cutConditions takes the bracketed conditions off the front of a line.
func cutConditions(text string) (condition, string, error) {
	var c condition
	rest := text
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return c, "", fmt.Errorf("unterminated condition %q", rest)
		}
		if err := c.addTerms(rest[1:end]); err != nil {
			return c, "", err
		}
		rest = strings.TrimSpace(rest[end+1:])
	}
	c.text = strings.TrimSpace(text[:len(text)-len(rest)])
	return c, rest, nil
}
