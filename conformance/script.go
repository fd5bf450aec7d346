package conformance

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A File is one script file of the suite. It holds one case, or several
// introduced by "case NAME" lines.
type File struct {
	Name  string // base name, e.g. "framing.txt"
	Text  string
	Cases []*Case
}

// A Case is an independent scenario: it starts its own daemon, and its
// result does not depend on any other case.
type Case struct {
	Name       string // "file" or "file/case"
	File       *File
	Difference int // docs/differences.md row this case pins, 0 if none
	// Shared says the case may run against a running daemon that others
	// use: it starts nothing, stops nothing and checks no global state.
	Shared bool
	Line   int // first line of the case

	daemon   *daemonStep
	steps    []step
	usesFree bool     // refers to $free, a second free port
	needs    []string // capabilities the case needs (see Capabilities)
}

// Steps are the executable lines of a case.
type step interface {
	pos() *srcLine
}

type stepBase struct{ src srcLine }

func (s *stepBase) pos() *srcLine { return &s.src }

type daemonStep struct {
	stepBase
	env       []envArg
	args      []argWord
	fixedPort int // -port N given literally, 0 otherwise
	detach    bool
}

type envArg struct {
	name string
	val  argWord
}

// argWord is a command-line argument: a bare word with $var / ${var}
// expansion, or a quoted string (which may be repeated, "a"*1001).
type argWord struct{ it litItem }

type openStep struct {
	stepBase
	conn string
	ipv6 bool
}

type sendStep struct {
	stepBase
	conn    string
	raw     bool
	dribble time.Duration // > 0: one byte per write, this long apart
	data    byteExpr
}

type expectBytesStep struct {
	stepBase
	conn   string
	within time.Duration
	after  time.Duration // the bytes may not be complete sooner than this after the last send
	data   byteExpr
}

type expectClosedStep struct {
	stepBase
	conn   string
	within time.Duration
}

type expectOpenStep struct {
	stepBase
	conn string
	dur  time.Duration
}

type expectAlive2Step struct {
	stepBase
	conn     string
	tag      byte // 'v' or 'y'
	result   numExpr
	creation creationRule
	save     string
}

// creationRule checks the creation of an ALIVE2 reply.
type creationRule struct {
	text   string
	kind   string // "now", "any", "range", "expr"
	lo, hi numExpr
	e      numExpr
}

type closeStep struct {
	stepBase
	conn string
}

// shutdownStep half-closes a connection: no more sending, still reading.
type shutdownStep struct {
	stepBase
	conn string
}

type sleepStep struct {
	stepBase
	d time.Duration
}

type expectNamesStep struct {
	stepBase
	nodes []nameWant
}

type nameWant struct {
	name byteExpr
	port numExpr
}

type expectDumpStep struct {
	stepBase
	entries []dumpWant
}

type dumpWant struct {
	old  bool
	name byteExpr
	port numExpr
	fd   string // "*", a number, ">VAR" (capture) or "$VAR" (compare)
}

type runStep struct {
	stepBase
	env  []envArg
	args []argWord
}

type expectOutputStep struct {
	stepBase
	stream string // "stdout" or "stderr"
	mode   string // "bytes", "re", "file"
	data   byteExpr
	re     *regexp.Regexp
	file   string
}

type expectStatusStep struct {
	stepBase
	code int
}

type expectDaemonStep struct {
	stepBase
	running bool
	code    int
	within  time.Duration
}

type expectLogStep struct {
	stepBase
	re     *regexp.Regexp
	within time.Duration
}

// Default waits. They are generous because the suite runs many daemons at
// once; a correct daemon answers in microseconds.
const (
	defaultWithin   = 3 * time.Second
	defaultOpenWait = 500 * time.Millisecond
)

// Load parses every *.txt script in fsys (at its root), sorted by name.
func Load(fsys fs.FS) ([]*File, error) {
	names, err := fs.Glob(fsys, "*.txt")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var files []*File
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		f, err := ParseFile(n, string(b))
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// Cases returns the cases of files in order.
func Cases(files []*File) []*Case {
	var cs []*Case
	for _, f := range files {
		cs = append(cs, f.Cases...)
	}
	return cs
}

// ParseFile parses one script file.
func ParseFile(name, text string) (*File, error) {
	f := &File{Name: path.Base(name), Text: text}
	lines, err := splitLines(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	base := strings.TrimSuffix(f.Name, ".txt")
	multi := false
	for _, l := range lines {
		if l.toks[0] == "case" {
			multi = true
		}
	}
	var cur *Case
	seen := map[string]bool{}
	for _, l := range lines {
		if l.toks[0] == "case" {
			if !l.cond.empty() || len(l.toks) != 2 || !connRE.MatchString(l.toks[1]) {
				return nil, fmt.Errorf("%s:%d: want: case NAME", name, l.first)
			}
			cur = &Case{Name: base + "/" + l.toks[1], File: f, Line: l.first}
			if seen[cur.Name] {
				return nil, fmt.Errorf("%s:%d: case %s defined twice", name, l.first, l.toks[1])
			}
			seen[cur.Name] = true
			f.Cases = append(f.Cases, cur)
			continue
		}
		if cur == nil {
			if multi {
				return nil, fmt.Errorf("%s:%d: steps before the first case line", name, l.first)
			}
			cur = &Case{Name: base, File: f, Line: l.first}
			f.Cases = append(f.Cases, cur)
		}
		if err := cur.addLine(l); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, l.first, err)
		}
	}
	for _, c := range f.Cases {
		if c.daemon == nil {
			return nil, fmt.Errorf("%s:%d: case %s has no daemon line", name, c.Line, c.Name)
		}
		c.computeNeeds()
		if why := c.needsOwnDaemon(); c.Shared && why != "" {
			return nil, fmt.Errorf("%s:%d: case %s is marked shared but %s", name, c.Line, c.Name, why)
		}
	}
	return f, nil
}

func (c *Case) addLine(l srcLine) error {
	t := l.toks
	if t[0] == "difference" {
		if len(t) != 2 || !l.cond.empty() {
			return fmt.Errorf("want: difference N")
		}
		n, err := strconv.Atoi(t[1])
		if err != nil || n <= 0 {
			return fmt.Errorf("difference wants a row number of docs/differences.md")
		}
		c.Difference = n
		return nil
	}
	if t[0] == "shared" {
		if len(t) != 1 || !l.cond.empty() {
			return fmt.Errorf("want: shared")
		}
		c.Shared = true
		return nil
	}
	s, err := parseStep(l)
	if err != nil {
		return err
	}
	if strings.Contains(l.text, "$free") || strings.Contains(l.text, "${free}") {
		c.usesFree = true
	}
	if d, ok := s.(*daemonStep); ok {
		if c.daemon != nil || len(c.steps) > 0 || !l.cond.empty() {
			return fmt.Errorf("the daemon line must come once, before every other step, without a condition")
		}
		c.daemon = d
		return nil
	}
	if c.daemon == nil {
		return fmt.Errorf("%s before the daemon line", t[0])
	}
	c.steps = append(c.steps, s)
	return nil
}

var connRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func parseConn(t []string, i int) (string, error) {
	if i >= len(t) || !connRE.MatchString(t[i]) {
		return "", fmt.Errorf("want a connection name")
	}
	return t[i], nil
}

// takeWithin parses an optional "within DUR" (or "for DUR") at t[i:].
func takeDur(t []string, i int, kw string, def time.Duration) (time.Duration, int, error) {
	if i < len(t) && t[i] == kw {
		if i+1 >= len(t) {
			return 0, 0, fmt.Errorf("%s wants a duration", kw)
		}
		d, err := time.ParseDuration(t[i+1])
		if err != nil {
			return 0, 0, err
		}
		return d, i + 2, nil
	}
	return def, i, nil
}

func parseStep(l srcLine) (step, error) {
	t := l.toks
	base := stepBase{l}
	switch t[0] {
	case "daemon":
		d := &daemonStep{stepBase: base}
		env, args, err := parseCommand(t[1:])
		if err != nil {
			return nil, err
		}
		d.env, d.args = env, args
		for i, a := range t[1:] {
			switch a {
			case "-daemon":
				d.detach = true
			case "-port":
				if i+2 < len(t) {
					if n, err := strconv.Atoi(t[i+2]); err == nil && n > 0 {
						d.fixedPort = n
					}
				}
			}
		}
		return d, nil
	case "open":
		c, err := parseConn(t, 1)
		if err != nil {
			return nil, err
		}
		s := &openStep{stepBase: base, conn: c}
		switch {
		case len(t) == 2 || len(t) == 3 && t[2] == "ipv4":
		case len(t) == 3 && t[2] == "ipv6":
			s.ipv6 = true
		default:
			return nil, fmt.Errorf("want: open CONN [ipv4|ipv6]")
		}
		return s, nil
	case "send":
		c, err := parseConn(t, 1)
		if err != nil {
			return nil, err
		}
		s := &sendStep{stepBase: base, conn: c}
		i := 2
		if i >= len(t) {
			return nil, fmt.Errorf("send needs data")
		}
		switch t[i] {
		case "frame":
			i++
		case "raw":
			s.raw = true
			i++
		case "dribble":
			if i+1 >= len(t) {
				return nil, fmt.Errorf("want: send CONN dribble DUR BYTES")
			}
			if s.dribble, err = time.ParseDuration(t[i+1]); err != nil || s.dribble <= 0 {
				return nil, fmt.Errorf("bad dribble interval %q", t[i+1])
			}
			s.raw = true
			i += 2
		case "alive2":
			f, err := parseAlive2Fields(t[3:])
			if err != nil {
				return nil, err
			}
			s.data = byteExpr{alive2Item{f}}
			return s, nil
		}
		if s.data, err = parseByteExpr(t[i:]); err != nil {
			return nil, err
		}
		if len(s.data) == 0 {
			return nil, fmt.Errorf("send needs data")
		}
		return s, nil
	case "close":
		c, err := parseConn(t, 1)
		if err != nil || len(t) != 2 {
			return nil, fmt.Errorf("want: close CONN")
		}
		return &closeStep{stepBase: base, conn: c}, nil
	case "shutdown":
		c, err := parseConn(t, 1)
		if err != nil || len(t) != 2 {
			return nil, fmt.Errorf("want: shutdown CONN")
		}
		return &shutdownStep{stepBase: base, conn: c}, nil
	case "sleep":
		if len(t) != 2 {
			return nil, fmt.Errorf("want: sleep DUR")
		}
		d, err := time.ParseDuration(t[1])
		if err != nil {
			return nil, err
		}
		return &sleepStep{stepBase: base, d: d}, nil
	case "run":
		env, args, err := parseCommand(t[1:])
		if err != nil {
			return nil, err
		}
		return &runStep{stepBase: base, env: env, args: args}, nil
	case "expect":
		if len(t) < 2 {
			return nil, fmt.Errorf("expect what?")
		}
		return parseExpect(base, t)
	}
	return nil, fmt.Errorf("unknown step %q", t[0])
}

var envRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

func parseCommand(t []string) ([]envArg, []argWord, error) {
	var env []envArg
	i := 0
	for ; i < len(t) && envRE.MatchString(t[i]); i++ {
		k, v, _ := strings.Cut(t[i], "=")
		w, err := parseArg(v)
		if err != nil {
			return nil, nil, err
		}
		env = append(env, envArg{k, w})
	}
	var args []argWord
	for ; i < len(t); i++ {
		w, err := parseArg(t[i])
		if err != nil {
			return nil, nil, err
		}
		args = append(args, w)
	}
	return env, args, nil
}

func parseArg(tok string) (argWord, error) {
	if strings.HasPrefix(tok, `"`) || strings.HasPrefix(tok, "`") {
		it, err := parseByteItem(tok)
		if err != nil {
			return argWord{}, err
		}
		return argWord{it.(litItem)}, nil
	}
	if strings.HasPrefix(tok, "$") && identRE.MatchString(tok[1:]) && len(identRE.FindString(tok[1:])) == len(tok)-1 {
		tok = "${" + tok[1:] + "}"
	}
	return argWord{litItem{s: tok}}, nil
}

func (a argWord) eval(v vars) (string, error) {
	b, err := a.it.eval(v)
	return string(b), err
}

func parseExpect(base stepBase, t []string) (step, error) {
	switch t[1] {
	case "names":
		s := &expectNamesStep{stepBase: base}
		rest := t[2:]
		if len(rest)%2 != 0 {
			return nil, fmt.Errorf("want: expect names [NAME PORT]...")
		}
		for i := 0; i < len(rest); i += 2 {
			n, err := parseNameWord(rest[i])
			if err != nil {
				return nil, err
			}
			p, err := parseNum(rest[i+1])
			if err != nil {
				return nil, err
			}
			s.nodes = append(s.nodes, nameWant{n, p})
		}
		return s, nil
	case "dump":
		s := &expectDumpStep{stepBase: base}
		rest := t[2:]
		if len(rest)%4 != 0 {
			return nil, fmt.Errorf("want: expect dump [active|old NAME PORT FD]...")
		}
		for i := 0; i < len(rest); i += 4 {
			var w dumpWant
			switch rest[i] {
			case "active":
			case "old":
				w.old = true
			default:
				return nil, fmt.Errorf("dump entry kind %q: want active or old", rest[i])
			}
			var err error
			if w.name, err = parseNameWord(rest[i+1]); err != nil {
				return nil, err
			}
			if w.port, err = parseNum(rest[i+2]); err != nil {
				return nil, err
			}
			w.fd = rest[i+3]
			if !regexp.MustCompile(`^(\*|\d+|[>$][A-Za-z_][A-Za-z0-9_]*)$`).MatchString(w.fd) {
				return nil, fmt.Errorf("fd rule %q: want *, a number, >VAR or $VAR", w.fd)
			}
			s.entries = append(s.entries, w)
		}
		return s, nil
	case "stdout", "stderr":
		s := &expectOutputStep{stepBase: base, stream: t[1], mode: "bytes"}
		rest := t[2:]
		if len(rest) > 0 && (rest[0] == "re" || rest[0] == "file") {
			if len(rest) != 2 {
				return nil, fmt.Errorf("want: expect %s %s ARG", t[1], rest[0])
			}
			w, err := word(rest[1])
			if err != nil {
				return nil, err
			}
			s.mode = rest[0]
			if s.mode == "re" {
				if s.re, err = regexp.Compile(w); err != nil {
					return nil, err
				}
			} else {
				s.file = w
			}
			return s, nil
		}
		var err error
		s.data, err = parseByteExpr(rest)
		return s, err
	case "status":
		if len(t) != 3 {
			return nil, fmt.Errorf("want: expect status N")
		}
		n, err := strconv.Atoi(t[2])
		if err != nil {
			return nil, err
		}
		return &expectStatusStep{stepBase: base, code: n}, nil
	case "daemon":
		s := &expectDaemonStep{stepBase: base}
		switch {
		case len(t) == 3 && t[2] == "running":
			s.running = true
			return s, nil
		case len(t) >= 4 && t[2] == "exited":
			n, err := strconv.Atoi(t[3])
			if err != nil {
				return nil, err
			}
			s.code = n
			d, i, err := takeDur(t, 4, "within", defaultWithin)
			if err != nil || i != len(t) {
				return nil, fmt.Errorf("want: expect daemon exited N [within DUR]")
			}
			s.within = d
			return s, nil
		}
		return nil, fmt.Errorf("want: expect daemon running | expect daemon exited N [within DUR]")
	case "log":
		if len(t) < 4 || t[2] != "re" {
			return nil, fmt.Errorf("want: expect log re REGEXP [within DUR]")
		}
		w, err := word(t[3])
		if err != nil {
			return nil, err
		}
		re, err := regexp.Compile(w)
		if err != nil {
			return nil, err
		}
		d, i, err := takeDur(t, 4, "within", defaultWithin)
		if err != nil || i != len(t) {
			return nil, fmt.Errorf("want: expect log re REGEXP [within DUR]")
		}
		return &expectLogStep{stepBase: base, re: re, within: d}, nil
	}
	// Connection expectations: expect CONN what ...
	c, err := parseConn(t, 1)
	if err != nil {
		return nil, fmt.Errorf("unknown expectation %q", t[1])
	}
	if len(t) < 3 {
		return nil, fmt.Errorf("expect %s what? (bytes, closed, open, alive2)", c)
	}
	switch t[2] {
	case "bytes":
		d, i, err := takeDur(t, 3, "within", defaultWithin)
		if err != nil {
			return nil, err
		}
		after, i, err := takeDur(t, i, "after", 0)
		if err != nil {
			return nil, err
		}
		data, err := parseByteExpr(t[i:])
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("expect bytes needs bytes (use closed or open for none)")
		}
		return &expectBytesStep{stepBase: base, conn: c, within: d, after: after, data: data}, nil
	case "closed":
		d, i, err := takeDur(t, 3, "within", defaultWithin)
		if err != nil || i != len(t) {
			return nil, fmt.Errorf("want: expect CONN closed [within DUR]")
		}
		return &expectClosedStep{stepBase: base, conn: c, within: d}, nil
	case "open":
		d, i, err := takeDur(t, 3, "for", defaultOpenWait)
		if err != nil || i != len(t) {
			return nil, fmt.Errorf("want: expect CONN open [for DUR]")
		}
		return &expectOpenStep{stepBase: base, conn: c, dur: d}, nil
	case "alive2":
		return parseExpectAlive2(base, c, t[3:])
	}
	return nil, fmt.Errorf("unknown expectation %q", t[2])
}

// parseNameWord parses a node name: a bare word (taken literally) or a
// byte item ("quoted"*N, hex is not allowed to avoid ambiguity).
func parseNameWord(tok string) (byteExpr, error) {
	if strings.HasPrefix(tok, `"`) || strings.HasPrefix(tok, "`") {
		it, err := parseByteItem(tok)
		if err != nil {
			return nil, err
		}
		return byteExpr{it}, nil
	}
	return byteExpr{litItem{s: tok}}, nil
}

func parseExpectAlive2(base stepBase, c string, t []string) (step, error) {
	s := &expectAlive2Step{stepBase: base, conn: c, result: "0"}
	if len(t) == 0 || (t[0] != "v" && t[0] != "y") {
		return nil, fmt.Errorf("want: expect CONN alive2 v|y [result=N] [creation=RULE] [save=VAR]")
	}
	s.tag = t[0][0]
	haveCreation := false
	for _, kv := range t[1:] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("alive2 expectation %q: want key=value", kv)
		}
		var err error
		switch k {
		case "result":
			s.result, err = parseNum(val)
		case "creation":
			s.creation, err = parseCreation(val)
			haveCreation = true
		case "save":
			if !identRE.MatchString(val) {
				err = fmt.Errorf("bad variable name %q", val)
			}
			s.save = val
		default:
			err = fmt.Errorf("unknown alive2 expectation key %q", k)
		}
		if err != nil {
			return nil, err
		}
	}
	if !haveCreation {
		s.creation = creationRule{text: "any", kind: "any"}
	}
	return s, nil
}

func parseCreation(v string) (creationRule, error) {
	r := creationRule{text: v}
	switch {
	case v == "now":
		r.kind = "now"
	case v == "any" || v == "*":
		r.kind = "any"
	case strings.Contains(v, ".."):
		lo, hi, _ := strings.Cut(v, "..")
		var err error
		r.kind = "range"
		if r.lo, err = parseNum(lo); err != nil {
			return r, err
		}
		if r.hi, err = parseNum(hi); err != nil {
			return r, err
		}
	default:
		var err error
		r.kind = "expr"
		if r.e, err = parseNum(v); err != nil {
			return r, err
		}
	}
	return r, nil
}
