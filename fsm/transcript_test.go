package fsm_test

// Transcript tests: fsm/testdata/*.txt hold events for several connections
// sharing one registry, each followed by the actions and state they must
// produce. `go test ./fsm -run TestTranscripts -update` rewrites the
// expected sections from what the machine does now; review the diff.
//
// File format. A file is a sequence of blocks:
//
//	# comments and blank lines are kept as they are
//	command
//	command
//	----
//	expected output
//	expected output
//	<blank line ends the block>
//
// Commands:
//
//	registry max=N                 start over with registry.New(N) (default MaxRemembered)
//	conn NAME local|remote [relaxed] [port=N] [fd=N] [grace=N]
//	                               a new connection; IDs count from 1, fds from 5
//	NAME recv alive2 name=S [port=N] [type=N] [proto=N] [high=N] [low=N] [extra=S] [now=N]
//	                               defaults: port 0, type 77, proto 0, high 6, low 5, now 1000
//	NAME recv port2 name=S
//	NAME recv names | dump | kill
//	NAME recv stop name=S
//	NAME malformed | data | peerclosed | timeout | writefailed
//	NAME probed at=N [gone=true]   the server's answer to a ProbeOwner asked again
//	                               (OwnerProbed at N ms; a first ProbeOwner is
//	                               answered at once, at=0, gone as NAME gone says)
//	NAME gone                      the peer of NAME has closed its socket, but the
//	                               event is not delivered yet: a ProbeOwner of NAME
//	                               is answered Gone (otherwise not gone)
//	show registry                  print the live and remembered records
//
// A string S is a bare word or a Go-quoted string, optionally followed by
// *N to repeat it N times: name=a*256, name="\U0001F600"*255.
//
// An event prints its actions, one per line (a Send shows the response and,
// indented, the bytes written), then "state: S". Connections appear by name.

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/gopmd/gopmd/epmd/registry"
	"github.com/gopmd/gopmd/epmd/wire"
	"github.com/gopmd/gopmd/fsm"
)

var update = flag.Bool("update", false, "rewrite the expected sections of fsm/testdata/*.txt")

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			res := runTranscript(t, file, string(data))
			if *update {
				if res.text != string(data) {
					if err := os.WriteFile(file, []byte(res.text), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("rewrote %s", file)
				}
				return
			}
			for _, m := range res.mismatches {
				t.Error(m)
			}
		})
	}
}

// TestTranscriptRunner checks the runner itself: a wrong expectation is
// reported, -update's rewrite fixes it and keeps comments, and the
// rewritten text then passes.
func TestTranscriptRunner(t *testing.T) {
	const in = `# a comment
conn a local
a recv names
----
send NAMES_RESP port=4369
  00 00 11 11
  "name ghost at port 1\n"
close reason=done
state: Closed

# another block
a timeout
----
wrong
`
	const want = `# a comment
conn a local
a recv names
----
send NAMES_RESP port=4369
  00 00 11 11
close reason=done
state: Closed

# another block
a timeout
----
(no actions)
state: Closed
`
	res := runTranscript(t, "in.txt", in)
	if len(res.mismatches) != 2 {
		t.Errorf("mismatches = %d, want 2:\n%s", len(res.mismatches), strings.Join(res.mismatches, "\n"))
	}
	if d := cmp.Diff(want, res.text); d != "" {
		t.Errorf("rewritten (-want +got):\n%s", d)
	}
	if res := runTranscript(t, "want.txt", want); len(res.mismatches) != 0 || res.text != want {
		t.Errorf("rewritten transcript does not pass: %q", res.mismatches)
	}
}

type transcriptResult struct {
	text       string   // the file with every expected section recomputed
	mismatches []string // one per block whose expected section differs
}

type block struct {
	cmds    []string // raw lines before "----", comments and blank lines included
	line    int      // 1-based line number of the first of them
	out     []string // expected output
	hasSep  bool     // the block has a "----" line
	trailer bool     // a blank line followed the output
}

func parseTranscript(data string) []block {
	lines := strings.Split(data, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	var blocks []block
	cur := block{line: 1}
	for i := 0; i < len(lines); i++ {
		if lines[i] != "----" {
			cur.cmds = append(cur.cmds, lines[i])
			continue
		}
		cur.hasSep = true
		for i++; i < len(lines) && lines[i] != ""; i++ {
			cur.out = append(cur.out, lines[i])
		}
		cur.trailer = i < len(lines)
		blocks = append(blocks, cur)
		cur = block{line: i + 2}
	}
	if len(cur.cmds) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

func runTranscript(t *testing.T, file, data string) transcriptResult {
	t.Helper()
	e := newTranscriptEnv(t)
	var res transcriptResult
	var b strings.Builder
	for _, bl := range parseTranscript(data) {
		var got []string
		hasCommand := false
		for i, line := range bl.cmds {
			if s := strings.TrimSpace(line); s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			hasCommand = true
			out, err := e.run(line)
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", file, bl.line+i, line, err)
			}
			got = append(got, out...)
		}
		for _, l := range bl.cmds {
			b.WriteString(l + "\n")
		}
		if !hasCommand && !bl.hasSep {
			continue // trailing comments
		}
		if !bl.hasSep && !*update {
			res.mismatches = append(res.mismatches, fmt.Sprintf("%s:%d: block without ---- (run with -update)", file, bl.line))
		}
		if d := cmp.Diff(bl.out, got); d != "" {
			res.mismatches = append(res.mismatches, fmt.Sprintf("%s:%d: output (-want +got):\n%s", file, bl.line, d))
		}
		b.WriteString("----\n")
		for _, l := range got {
			b.WriteString(l + "\n")
		}
		if bl.trailer {
			b.WriteString("\n")
		}
	}
	res.text = b.String()
	return res
}

// transcriptEnv is the state shared by the connections of one file.
type transcriptEnv struct {
	t      *testing.T
	reg    *registry.Registry
	conns  map[string]*fsm.Conn
	byID   map[registry.ConnID]string
	nextID registry.ConnID
	nextFd int
	gone   map[registry.ConnID]bool // peers closed but not yet noticed
}

func newTranscriptEnv(t *testing.T) *transcriptEnv {
	e := &transcriptEnv{t: t}
	e.reset(registry.MaxRemembered)
	return e
}

func (e *transcriptEnv) reset(max int) {
	e.reg = registry.New(max)
	e.conns = make(map[string]*fsm.Conn)
	e.byID = make(map[registry.ConnID]string)
	e.gone = make(map[registry.ConnID]bool)
	e.nextID, e.nextFd = 1, 5
}

// run executes one command line and returns its output.
func (e *transcriptEnv) run(line string) ([]string, error) {
	words, args, err := tokenize(line)
	if err != nil {
		return nil, err
	}
	switch {
	case len(words) == 1 && words[0] == "registry":
		max, err := args.int("max", registry.MaxRemembered)
		if err != nil {
			return nil, err
		}
		e.reset(max)
		return nil, args.done()
	case len(words) == 2 && words[0] == "show" && words[1] == "registry":
		return e.showRegistry(), args.done()
	case len(words) == 2 && words[1] == "gone":
		c := e.conns[words[0]]
		if c == nil {
			return nil, fmt.Errorf("unknown connection %q", words[0])
		}
		e.gone[c.Config().ID] = true
		return nil, args.done()
	case len(words) >= 3 && words[0] == "conn":
		return nil, e.newConn(words[1], words[2:], args)
	case len(words) >= 2:
		c := e.conns[words[0]]
		if c == nil {
			return nil, fmt.Errorf("unknown connection %q", words[0])
		}
		ev, err := parseEvent(words[1:], args)
		if err != nil {
			return nil, err
		}
		if err := args.done(); err != nil {
			return nil, err
		}
		return e.step(words[0], c, ev), nil
	}
	return nil, fmt.Errorf("unknown command")
}

func (e *transcriptEnv) newConn(name string, flags []string, args *kv) error {
	if e.conns[name] != nil {
		return fmt.Errorf("connection %q already exists", name)
	}
	cfg := fsm.Config{ID: e.nextID, Fd: e.nextFd}
	seenLocality := false
	for _, f := range flags {
		switch f {
		case "local", "remote":
			cfg.Local, seenLocality = f == "local", true
		case "relaxed":
			cfg.Relaxed = true
		default:
			return fmt.Errorf("unknown connection flag %q", f)
		}
	}
	if !seenLocality {
		return fmt.Errorf("connection needs local or remote")
	}
	port, err := args.int("port", wire.DefaultPort)
	if err != nil {
		return err
	}
	fd, err := args.int("fd", e.nextFd)
	if err != nil {
		return err
	}
	grace, err := args.int("grace", 0)
	if err != nil {
		return err
	}
	cfg.Port, cfg.Fd, cfg.ProbeGrace = uint32(port), fd, int64(grace)
	e.nextID++
	e.nextFd++
	e.conns[name] = fsm.New(cfg)
	e.byID[cfg.ID] = name
	return args.done()
}

func parseEvent(words []string, args *kv) (fsm.Event, error) {
	if words[0] != "recv" {
		if len(words) != 1 {
			return nil, fmt.Errorf("unexpected %q", words[1:])
		}
		switch words[0] {
		case "malformed":
			return fsm.Malformed{Err: wire.ErrTruncated}, nil
		case "data":
			return fsm.Data{}, nil
		case "peerclosed":
			return fsm.PeerClosed{}, nil
		case "timeout":
			return fsm.Timeout{}, nil
		case "writefailed":
			return fsm.WriteFailed{}, nil
		case "probed":
			at, err := args.int64("at", 0)
			if err != nil {
				return nil, err
			}
			gone, _ := args.str("gone")
			return fsm.OwnerProbed{Gone: gone == "true", At: at}, nil
		}
		return nil, fmt.Errorf("unknown event %q", words[0])
	}
	if len(words) != 2 {
		return nil, fmt.Errorf("recv needs exactly one request kind")
	}
	switch words[1] {
	case "alive2":
		var n wire.Node
		var err error
		var v int
		num := func(key string, def int, max int) int {
			if err != nil {
				return 0
			}
			v, err = args.int(key, def)
			if err == nil && (v < 0 || v > max) {
				err = fmt.Errorf("%s=%d out of range", key, v)
			}
			return v
		}
		n.Port = uint16(num("port", 0, 0xFFFF))
		n.Type = uint8(num("type", int(wire.NodeNormal), 0xFF))
		n.Proto = uint8(num("proto", int(wire.ProtoTCP4), 0xFF))
		n.High = uint16(num("high", 6, 0xFFFF))
		n.Low = uint16(num("low", 5, 0xFFFF))
		if err != nil {
			return nil, err
		}
		now, err := args.int64("now", 1000)
		if err != nil {
			return nil, err
		}
		var ok bool
		if n.Name, ok = args.str("name"); !ok {
			return nil, fmt.Errorf("alive2 needs name=")
		}
		n.Extra, _ = args.str("extra")
		return fsm.Received{Req: &wire.Alive2Req{Node: n}, Now: now}, nil
	case "port2":
		name, ok := args.str("name")
		if !ok {
			return nil, fmt.Errorf("port2 needs name=")
		}
		return fsm.Received{Req: &wire.PortPlease2Req{Name: name}}, nil
	case "stop":
		name, ok := args.str("name")
		if !ok {
			return nil, fmt.Errorf("stop needs name=")
		}
		return fsm.Received{Req: &wire.StopReq{Name: name}}, nil
	case "names":
		return names, nil
	case "dump":
		return dump, nil
	case "kill":
		return kill, nil
	}
	return nil, fmt.Errorf("unknown request %q", words[1])
}

// step applies ev to c, checks the registry's and the actions' invariants,
// and prints the actions and the new state.
func (e *transcriptEnv) step(name string, c *fsm.Conn, ev fsm.Event) []string {
	t := e.t
	t.Helper()
	before := c.State()
	acts := stepProbe(t, c, e.reg, ev, func(id registry.ConnID) bool { return e.gone[id] })
	for i, a := range acts {
		if _, ok := a.(fsm.Close); ok && i != len(acts)-1 {
			t.Fatalf("%s: Close is not the last action: %#v", name, acts)
		}
	}
	if before != fsm.Closed && c.State() == fsm.Closed {
		if _, ok := acts[len(acts)-1].(fsm.Close); !ok {
			t.Fatalf("%s: closed without a Close action: %#v", name, acts)
		}
	}
	var out []string
	for i, a := range acts {
		// A ProbeOwner is answered by the next actions; the last action
		// of a step, it waits for a "probed" line.
		out = append(out, e.formatAction(a, i < len(acts)-1)...)
	}
	if len(acts) == 0 {
		out = append(out, "(no actions)")
	}
	return append(out, "state: "+c.State().String())
}

func (e *transcriptEnv) connName(id registry.ConnID) string {
	if n, ok := e.byID[id]; ok {
		return n
	}
	return "id=" + strconv.FormatUint(uint64(id), 10)
}

func formatNode(n wire.Node) string {
	return fmt.Sprintf("name=%s port=%d type=%d proto=%d high=%d low=%d extra=%s",
		fmtStr(n.Name), n.Port, n.Type, n.Proto, n.High, n.Low, fmtStr(n.Extra))
}

func (e *transcriptEnv) formatAction(a fsm.Action, answered bool) []string {
	switch a := a.(type) {
	case fsm.RegisteredNode:
		return []string{"registered " + formatNode(a.Node) + " creation=" + strconv.FormatUint(uint64(a.Creation), 10)}
	case fsm.UnregisteredNode:
		return []string{"unregistered name=" + fmtStr(a.Name)}
	case fsm.Refusal:
		return []string{"refusal reason=" + a.Reason + " detail=" + strconv.Quote(a.Detail)}
	case fsm.Close:
		line := "close reason=" + a.Reason
		if a.Detail != "" {
			line += " detail=" + strconv.Quote(a.Detail)
		}
		if a.Reset {
			line += " reset"
		}
		return []string{line}
	case fsm.CloseConn:
		return []string{"close_conn " + e.connName(a.ID)}
	case fsm.Shutdown:
		return []string{"shutdown"}
	case fsm.ProbeOwner:
		if !answered {
			return []string{"probe_owner " + e.connName(a.ID) + " (waiting)"}
		}
		return []string{"probe_owner " + e.connName(a.ID) + " -> gone=" + strconv.FormatBool(e.gone[a.ID])}
	case fsm.Send:
		return e.formatSend(a.Resp)
	}
	e.t.Fatalf("unknown action %#v", a)
	return nil
}

func (e *transcriptEnv) formatSend(r wire.Response) []string {
	b, err := r.AppendBinary(nil)
	if err != nil {
		e.t.Fatalf("encoding %#v: %v", r, err)
	}
	hexLine := func() string {
		if len(b) > 40 {
			return "  <" + strconv.Itoa(len(b)) + " bytes>"
		}
		return "  " + spacedHex(b)
	}
	// texts shows a NAMES or DUMP reply: the port header in hex, then each
	// write of the stock daemon quoted.
	texts := func(head string, sep string) []string {
		out := []string{head, "  " + spacedHex(b[:4])}
		for _, s := range strings.SplitAfter(string(b[4:]), sep) {
			if s != "" {
				out = append(out, "  "+strconv.Quote(s))
			}
		}
		return out
	}
	switch r := r.(type) {
	case *wire.Alive2XResp:
		return []string{fmt.Sprintf("send ALIVE2_X_RESP result=%d creation=%d", r.Result, r.Creation), hexLine()}
	case *wire.Alive2Resp:
		return []string{fmt.Sprintf("send ALIVE2_RESP result=%d creation=%d", r.Result, r.Creation), hexLine()}
	case *wire.Port2Resp:
		if r.Result != 0 {
			return []string{fmt.Sprintf("send PORT2_RESP result=%d", r.Result), hexLine()}
		}
		return []string{"send PORT2_RESP result=0 " + formatNode(r.Node), hexLine()}
	case *wire.NamesResp:
		return texts(fmt.Sprintf("send NAMES_RESP port=%d", r.Port), "\n")
	case *wire.DumpResp:
		return texts(fmt.Sprintf("send DUMP_RESP port=%d", r.Port), "\x00")
	case *wire.KillResp:
		return []string{"send KILL_RESP " + strconv.Quote(string(b))}
	case *wire.StopResp:
		return []string{"send STOP_RESP " + strconv.Quote(string(b))}
	}
	e.t.Fatalf("unknown response %#v", r)
	return nil
}

func (e *transcriptEnv) showRegistry() []string {
	var out []string
	for _, r := range e.reg.Live() {
		out = append(out, fmt.Sprintf("live %s owner=%s fd=%d port=%d creation=%d",
			fmtStr(r.Name), e.connName(r.Owner), r.Fd, r.Port, r.Creation))
	}
	for _, r := range e.reg.Remembered() {
		out = append(out, fmt.Sprintf("remembered %s owner=%s fd=%d port=%d creation=%d",
			fmtStr(r.Name), e.connName(r.Owner), r.Fd, r.Port, r.Creation))
	}
	if len(out) == 0 {
		out = append(out, "(empty registry)")
	}
	return out
}

func spacedHex(b []byte) string {
	s := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(s[i : i+2])
	}
	return sb.String()
}

// fmtStr prints s the way the parser reads it back: bare when it is a
// plain word, "x"*N when it is one character repeated many times, else
// Go-quoted.
func fmtStr(s string) string {
	if r, size := utf8.DecodeRuneInString(s); s != "" && r != utf8.RuneError {
		if n := len(s) / size; n > 8 && strings.Repeat(s[:size], n) == s {
			return fmtStr(s[:size]) + "*" + strconv.Itoa(n)
		}
	}
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-") == "" {
		return s
	}
	return strconv.Quote(s)
}

// kv holds a command's key=value arguments; done reports unused ones.
type kv struct {
	m    map[string]string
	used map[string]bool
}

func (a *kv) str(key string) (string, bool) {
	v, ok := a.m[key]
	a.used[key] = true
	return v, ok
}

func (a *kv) int64(key string, def int64) (int64, error) {
	v, ok := a.str(key)
	if !ok {
		return def, nil
	}
	return strconv.ParseInt(v, 0, 64)
}

func (a *kv) int(key string, def int) (int, error) {
	v, err := a.int64(key, int64(def))
	return int(v), err
}

func (a *kv) done() error {
	for k := range a.m {
		if !a.used[k] {
			return fmt.Errorf("unknown argument %s=", k)
		}
	}
	return nil
}

// tokenize splits a command line into words and key=value arguments.
func tokenize(line string) ([]string, *kv, error) {
	args := &kv{m: map[string]string{}, used: map[string]bool{}}
	var words []string
	s := strings.TrimSpace(line)
	for s != "" {
		i := strings.IndexByte(s, ' ')
		eq := strings.IndexByte(s, '=')
		if eq < 0 || (i >= 0 && i < eq) {
			// a plain word
			if i < 0 {
				i = len(s)
			}
			words = append(words, s[:i])
			s = strings.TrimSpace(s[i:])
			continue
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return nil, nil, fmt.Errorf("unterminated string after %s=", key)
			}
			var err error
			if val, err = strconv.Unquote(s[:end+1]); err != nil {
				return nil, nil, fmt.Errorf("%s=: %v", key, err)
			}
			s = s[end+1:]
		} else {
			j := strings.IndexAny(s, " *")
			if j < 0 {
				j = len(s)
			}
			val, s = s[:j], s[j:]
		}
		if strings.HasPrefix(s, "*") {
			j := strings.IndexByte(s, ' ')
			if j < 0 {
				j = len(s)
			}
			n, err := strconv.Atoi(s[1:j])
			if err != nil {
				return nil, nil, fmt.Errorf("%s=: bad repeat count: %v", key, err)
			}
			val, s = strings.Repeat(val, n), s[j:]
		}
		if s != "" && s[0] != ' ' {
			return nil, nil, fmt.Errorf("%s=: junk after value", key)
		}
		if _, dup := args.m[key]; dup {
			return nil, nil, fmt.Errorf("%s= given twice", key)
		}
		args.m[key] = val
		s = strings.TrimSpace(s)
	}
	return words, args, nil
}
