package conformance

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gopmd/gopmd/epmd/wire"
)

// vars are the values a script can refer to: $port (the daemon's configured
// port) and everything captured with save= or >NAME.
type vars map[string]int64

// numExpr is an integer expression: decimal or 0x numbers, 'c' characters,
// $variables, + - * % and parentheses, written without blanks.
type numExpr string

func parseNum(s string) (numExpr, error) {
	e := numExpr(s)
	_, err := e.eval(nil)
	if err != nil && !strings.Contains(err.Error(), "undefined variable") {
		return "", err
	}
	return e, nil
}

func (e numExpr) eval(v vars) (int64, error) {
	p := &numParser{s: string(e), v: v}
	n, err := p.sum()
	if err == nil && p.i != len(p.s) {
		err = fmt.Errorf("unexpected %q", p.s[p.i:])
	}
	if err != nil {
		return 0, fmt.Errorf("expression %q: %v", string(e), err)
	}
	return n, nil
}

type numParser struct {
	s string
	i int
	v vars
}

func (p *numParser) sum() (int64, error) {
	n, err := p.product()
	for err == nil && p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
		op := p.s[p.i]
		p.i++
		var m int64
		if m, err = p.product(); op == '+' {
			n += m
		} else {
			n -= m
		}
	}
	return n, err
}

func (p *numParser) product() (int64, error) {
	n, err := p.atom()
	for err == nil && p.i < len(p.s) && (p.s[p.i] == '*' || p.s[p.i] == '%') {
		op := p.s[p.i]
		p.i++
		var m int64
		m, err = p.atom()
		switch {
		case err != nil:
		case op == '*':
			n *= m
		case m == 0:
			err = fmt.Errorf("modulo by zero")
		default:
			n %= m
		}
	}
	return n, err
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*`)

func (p *numParser) atom() (int64, error) {
	if p.i >= len(p.s) {
		return 0, fmt.Errorf("missing operand")
	}
	switch c := p.s[p.i]; {
	case c == '(':
		p.i++
		n, err := p.sum()
		if err != nil {
			return 0, err
		}
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return 0, fmt.Errorf("missing )")
		}
		p.i++
		return n, nil
	case c == '-':
		p.i++
		n, err := p.atom()
		return -n, err
	case c == '$':
		id := identRE.FindString(p.s[p.i+1:])
		if id == "" {
			return 0, fmt.Errorf("bad variable")
		}
		p.i += 1 + len(id)
		n, ok := p.v[id]
		if !ok {
			return 0, fmt.Errorf("undefined variable $%s", id)
		}
		return n, nil
	case c == '\'':
		if p.i+2 < len(p.s) && p.s[p.i+2] == '\'' {
			n := int64(p.s[p.i+1])
			p.i += 3
			return n, nil
		}
		return 0, fmt.Errorf("bad character literal")
	case c >= '0' && c <= '9':
		j := p.i
		for j < len(p.s) && (isAlnum(p.s[j])) {
			j++
		}
		n, err := strconv.ParseInt(p.s[p.i:j], 0, 64)
		if err != nil {
			return 0, fmt.Errorf("bad number %q", p.s[p.i:j])
		}
		p.i = j
		return n, nil
	}
	return 0, fmt.Errorf("unexpected %q", p.s[p.i:])
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// A byteExpr is a sequence of items that evaluate to bytes:
//
//	"text"        Go string literal; ${var} inside is replaced by the decimal value
//	"text"*N      repeated N times
//	6e 00ff       hex bytes (an even number of digits), also HEX*N
//	u8:E u16:E u32:E   big-endian integers of the expression E
//	frame[ ... ]  the bytes inside, prefixed by their length as u16
//	alive2[ field=value ... ]  an ALIVE2_REQ payload (see alive2Fields)
type byteExpr []byteItem

type byteItem interface {
	eval(v vars) ([]byte, error)
}

type litItem struct {
	s      string // after unquoting, before interpolation
	repeat numExpr
}

type hexItem struct {
	b      []byte
	repeat numExpr
}

type intItem struct {
	size int
	e    numExpr
}

type frameItem struct{ body byteExpr }

type alive2Item struct{ f alive2Fields }

var interpRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func interpolate(s string, v vars) (string, error) {
	var err error
	out := interpRE.ReplaceAllStringFunc(s, func(m string) string {
		name := interpRE.FindStringSubmatch(m)[1]
		n, ok := v[name]
		if !ok {
			err = fmt.Errorf("undefined variable ${%s}", name)
			return m
		}
		return strconv.FormatInt(n, 10)
	})
	return out, err
}

func repeatCount(e numExpr, v vars) (int, error) {
	if e == "" {
		return 1, nil
	}
	n, err := e.eval(v)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("repeat count %d out of range", n)
	}
	return int(n), nil
}

func (it litItem) eval(v vars) ([]byte, error) {
	s, err := interpolate(it.s, v)
	if err != nil {
		return nil, err
	}
	n, err := repeatCount(it.repeat, v)
	if err != nil {
		return nil, err
	}
	if len(s)*n > maxBytes {
		return nil, fmt.Errorf("%d bytes is more than a script may ask for (%d)", len(s)*n, maxBytes)
	}
	return []byte(strings.Repeat(s, n)), nil
}

func (it hexItem) eval(v vars) ([]byte, error) {
	n, err := repeatCount(it.repeat, v)
	if err != nil {
		return nil, err
	}
	if len(it.b)*n > maxBytes {
		return nil, fmt.Errorf("%d bytes is more than a script may ask for (%d)", len(it.b)*n, maxBytes)
	}
	out := make([]byte, 0, len(it.b)*n)
	for i := 0; i < n; i++ {
		out = append(out, it.b...)
	}
	return out, nil
}

func (it intItem) eval(v vars) ([]byte, error) {
	n, err := it.e.eval(v)
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := it.size - 1; i >= 0; i-- {
		out = append(out, byte(n>>(8*i)))
	}
	return out, nil
}

func (it frameItem) eval(v vars) ([]byte, error) {
	body, err := it.body.eval(v)
	if err != nil {
		return nil, err
	}
	if len(body) > 0xFFFF {
		return nil, fmt.Errorf("frame body of %d bytes does not fit a 16-bit length", len(body))
	}
	return wire.AppendRawFrame(nil, uint16(len(body)), body), nil
}

func (it alive2Item) eval(v vars) ([]byte, error) { return it.f.payload(v) }

// maxBytes bounds what a byte expression may evaluate to: far more than
// any request (a frame holds at most 65535 bytes), far less than would
// strain the machine.
const maxBytes = 1 << 24

func (e byteExpr) eval(v vars) ([]byte, error) {
	var out []byte
	for _, it := range e {
		b, err := it.eval(v)
		if err != nil {
			return nil, err
		}
		if len(out)+len(b) > maxBytes {
			return nil, fmt.Errorf("%d bytes is more than a script may ask for (%d)", len(out)+len(b), maxBytes)
		}
		out = append(out, b...)
	}
	return out, nil
}

var hexRE = regexp.MustCompile(`^(?:[0-9a-fA-F]{2})+$`)

// parseBytes parses tokens as a byteExpr. It stops at an unmatched "]"
// and returns how many tokens it used.
func parseBytes(toks []string) (byteExpr, int, error) {
	var e byteExpr
	i := 0
	for i < len(toks) {
		t := toks[i]
		switch {
		case t == "]":
			return e, i, nil
		case t == "frame[":
			body, n, err := parseBytes(toks[i+1:])
			if err != nil {
				return nil, 0, err
			}
			if i+1+n >= len(toks) {
				return nil, 0, fmt.Errorf("frame[ without ]")
			}
			e = append(e, frameItem{body})
			i += n + 2
		case t == "alive2[":
			j := i + 1
			for j < len(toks) && toks[j] != "]" {
				j++
			}
			if j >= len(toks) {
				return nil, 0, fmt.Errorf("alive2[ without ]")
			}
			f, err := parseAlive2Fields(toks[i+1 : j])
			if err != nil {
				return nil, 0, err
			}
			e = append(e, alive2Item{f})
			i = j + 1
		default:
			it, err := parseByteItem(t)
			if err != nil {
				return nil, 0, err
			}
			e = append(e, it)
			i++
		}
	}
	return e, i, nil
}

// parseByteExpr parses all of toks as a byteExpr.
func parseByteExpr(toks []string) (byteExpr, error) {
	e, n, err := parseBytes(toks)
	if err != nil {
		return nil, err
	}
	if n != len(toks) {
		return nil, fmt.Errorf("unmatched ]")
	}
	return e, nil
}

func parseByteItem(t string) (byteItem, error) {
	if strings.HasPrefix(t, `"`) || strings.HasPrefix(t, "`") {
		s, rest, err := unquotePrefix(t)
		if err != nil {
			return nil, err
		}
		it := litItem{s: s}
		if rest != "" {
			r, ok := strings.CutPrefix(rest, "*")
			if !ok {
				return nil, fmt.Errorf("unexpected %q after string", rest)
			}
			if it.repeat, err = parseNum(r); err != nil {
				return nil, err
			}
		}
		return it, nil
	}
	for _, sz := range []struct {
		p string
		n int
	}{{"u8:", 1}, {"u16:", 2}, {"u32:", 4}} {
		if r, ok := strings.CutPrefix(t, sz.p); ok {
			e, err := parseNum(r)
			if err != nil {
				return nil, err
			}
			return intItem{sz.n, e}, nil
		}
	}
	h, rep, _ := strings.Cut(t, "*")
	if hexRE.MatchString(h) {
		it := hexItem{}
		for i := 0; i < len(h); i += 2 {
			b, _ := strconv.ParseUint(h[i:i+2], 16, 8)
			it.b = append(it.b, byte(b))
		}
		if rep != "" {
			var err error
			if it.repeat, err = parseNum(rep); err != nil {
				return nil, err
			}
		}
		return it, nil
	}
	return nil, fmt.Errorf("%q is not a byte item (\"text\", hex, u8:/u16:/u32:, frame[, alive2[)", t)
}

// alive2Fields describes an ALIVE2_REQ. Defaults are what a real OTP node
// sends: type=77 ('M'), proto=0, high=6, low=5, no extra. nlen and elen
// override the length fields (to lie about them); trailer is appended after
// the extra field.
type alive2Fields struct {
	name, extra, trailer byteExpr
	port, typ, proto     numExpr
	high, low            numExpr
	nlen, elen           numExpr
}

func parseAlive2Fields(toks []string) (alive2Fields, error) {
	f := alive2Fields{port: "5000", typ: "77", proto: "0", high: "6", low: "5"}
	seen := map[string]bool{}
	for _, t := range toks {
		k, val, ok := strings.Cut(t, "=")
		if !ok {
			return f, fmt.Errorf("alive2 field %q: want key=value", t)
		}
		if seen[k] {
			return f, fmt.Errorf("alive2 field %s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "name", "extra", "trailer":
			var it byteItem
			if !strings.HasPrefix(val, `"`) && !strings.HasPrefix(val, "`") {
				it = litItem{s: val} // bare word: the text itself
			} else if it, err = parseByteItem(val); err != nil {
				return f, err
			}
			switch k {
			case "name":
				f.name = byteExpr{it}
			case "extra":
				f.extra = byteExpr{it}
			default:
				f.trailer = byteExpr{it}
			}
		case "type":
			if len(val) == 1 && !(val[0] >= '0' && val[0] <= '9') {
				val = strconv.Itoa(int(val[0]))
			}
			f.typ, err = parseNum(val)
		case "port":
			f.port, err = parseNum(val)
		case "proto":
			f.proto, err = parseNum(val)
		case "high":
			f.high, err = parseNum(val)
		case "low":
			f.low, err = parseNum(val)
		case "nlen":
			f.nlen, err = parseNum(val)
		case "elen":
			f.elen, err = parseNum(val)
		default:
			return f, fmt.Errorf("unknown alive2 field %q (name port type proto high low extra nlen elen trailer)", k)
		}
		if err != nil {
			return f, err
		}
	}
	if !seen["name"] {
		return f, fmt.Errorf("alive2 needs name=")
	}
	return f, nil
}

func (f alive2Fields) payload(v vars) ([]byte, error) {
	name, err := f.name.eval(v)
	if err != nil {
		return nil, err
	}
	extra, err := f.extra.eval(v)
	if err != nil {
		return nil, err
	}
	trailer, err := f.trailer.eval(v)
	if err != nil {
		return nil, err
	}
	num := func(e numExpr, def int) (int64, error) {
		if e == "" {
			return int64(def), nil
		}
		return e.eval(v)
	}
	var fields [8]int64
	for i, e := range []struct {
		e   numExpr
		def int
	}{{f.port, 0}, {f.typ, 0}, {f.proto, 0}, {f.high, 0}, {f.low, 0}, {f.nlen, len(name)}, {f.elen, len(extra)}} {
		if fields[i], err = num(e.e, e.def); err != nil {
			return nil, err
		}
	}
	b := []byte{'x'}
	u16 := func(n int64) { b = append(b, byte(n>>8), byte(n)) }
	u16(fields[0])
	b = append(b, byte(fields[1]), byte(fields[2]))
	u16(fields[3])
	u16(fields[4])
	u16(fields[5])
	b = append(b, name...)
	u16(fields[6])
	b = append(b, extra...)
	return append(b, trailer...), nil
}
