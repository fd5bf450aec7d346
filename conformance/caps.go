package conformance

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Capabilities are what an epmd can do that some cases need. A daemon
// declares the ones it lacks (Target.Without); the cases that need one of
// them are skipped, with the reason. A case that fails on a capability it
// is not about (say, a STOP case whose setup registers a node and gets
// the pre-OTP-23 'y' reply) is BLOCKED by that capability, not failed.
//
// Keys are the names below, or a daemon flag ("-relaxed_command_check").
type Capabilities map[string]bool

// capTitles names the capabilities.
var capTitles = map[string]string{
	"alive2":      "ALIVE2 registration",
	"alive2-v":    "ALIVE2 v reply",
	"names":       "NAMES",
	"dump":        "DUMP",
	"kill":        "KILL",
	"stop":        "STOP",
	"cli":         "CLI (the binary run as a client)",
	"daemon-mode": "-daemon (detach)",
	"systemd":     "-systemd",
	"ipv6":        "IPv6 loopback",
	"log":         "stock's log lines on stderr",
	"exit":        "daemon exit status",
}

var flagCapRE = regexp.MustCompile(`^-[A-Za-z_][A-Za-z0-9_]*$`)

// CapabilityTitle is the human name of a capability key.
func CapabilityTitle(key string) string {
	if t, ok := capTitles[key]; ok {
		return t
	}
	if flagCapRE.MatchString(key) {
		return "daemon flag " + key
	}
	return key
}

// CapabilityKeys lists the named capabilities (daemon flags aside).
func CapabilityKeys() []string {
	var ks []string
	for k := range capTitles {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ParseCapabilities parses a list of capability keys separated by commas
// or blanks: "cli, dump -relaxed_command_check".
func ParseCapabilities(s string) (Capabilities, error) {
	cs := Capabilities{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		if _, ok := capTitles[w]; !ok && !flagCapRE.MatchString(w) {
			return nil, fmt.Errorf("unknown capability %q (want one of %s, or a daemon flag such as -relaxed_command_check)", w, strings.Join(CapabilityKeys(), ", "))
		}
		cs[w] = true
	}
	return cs, nil
}

// missing says which capability of c the daemon lacks ("" if none).
func (cs Capabilities) missing(c *Case) string {
	for _, n := range c.needs {
		if cs[n] {
			return n
		}
	}
	return ""
}

// subjects are the capabilities the built-in scripts are about, by file:
// a failure on one of them is a failure of the case, not a block. Other
// files are about the capability named like the file (names.txt: names).
var subjects = map[string][]string{
	"transcript":      {"*"},
	"alive2":          {"alive2", "alive2-v"},
	"creation":        {"alive2", "alive2-v"},
	"lifecycle":       {"alive2"},
	"daemon_mode":     {"daemon-mode", "-daemon"},
	"address":         {"-address", "ipv6"},
	"cli":             {"cli", "exit", "systemd"},
	"log":             {"log", "-d", "-debug"},
	"kill":            {"kill", "exit", "-relaxed_command_check"},
	"stop":            {"stop", "-relaxed_command_check"},
	"timeout":         {"-packet_timeout"},
	"timeout_release": {"-packet_timeout"},
	"delays":          {"-delay_write", "-delay_accept"},
	"ipv6":            {"ipv6"},
}

// about reports whether the case is about capability key.
func (c *Case) about(key string) bool {
	base := strings.TrimSuffix(c.File.Name, ".txt")
	subj, ok := subjects[base]
	if !ok {
		subj = []string{strings.ReplaceAll(base, "_", "-")}
	}
	for _, s := range subj {
		if s == "*" || s == key {
			return true
		}
	}
	return false
}

// computeNeeds lists the capabilities a case needs, from its steps.
func (c *Case) computeNeeds() {
	add := func(k string) {
		for _, n := range c.needs {
			if n == k {
				return
			}
		}
		c.needs = append(c.needs, k)
	}
	for _, f := range c.daemon.flags() {
		add(f)
		switch f {
		case "-daemon":
			add("daemon-mode")
		case "-systemd":
			add("systemd")
		}
	}
	for _, a := range c.daemon.args {
		if strings.Contains(a.it.s, "::") {
			add("ipv6")
		}
	}
	for _, s := range c.steps {
		switch s := s.(type) {
		case *openStep:
			if s.ipv6 {
				add("ipv6")
			}
		case *runStep:
			add("cli")
			for _, a := range s.args {
				switch a.it.s {
				case "-kill":
					add("kill")
				case "-stop":
					add("stop")
				case "-dump":
					add("dump")
				case "-systemd":
					add("systemd")
				}
			}
		case *expectNamesStep:
			add("names")
		case *expectDumpStep:
			add("dump")
		case *expectLogStep:
			add("log")
		case *expectDaemonStep:
			add("exit")
		case *sendStep:
			if code := s.requestCode(); code != 0 {
				switch code {
				case 'd':
					add("dump")
				case 'k':
					add("kill")
				case 's':
					add("stop")
				}
			}
		}
	}
}

// requestCode is the request code of a framed send whose bytes do not
// depend on variables (0 otherwise).
func (s *sendStep) requestCode() byte {
	b, err := s.data.eval(vars{"port": 0, "free": 0})
	if err != nil {
		return 0
	}
	if !s.raw {
		b = append([]byte{0, 0}, b...)
	}
	if len(b) >= 3 {
		return b[2]
	}
	return 0
}

// expectsExit reports whether the daemon may end during the case: the
// case waits for its exit or sends KILL.
func (c *Case) expectsExit() bool {
	for _, n := range c.needs {
		if n == "kill" {
			return true
		}
	}
	for _, s := range c.steps {
		if s, ok := s.(*expectDaemonStep); ok && !s.running {
			return true
		}
		if s, ok := s.(*sendStep); ok && s.raw {
			// Raw bytes may hold a KILL anywhere: be generous.
			b, _ := s.data.eval(vars{"port": 0, "free": 0})
			if strings.IndexByte(string(b), 'k') >= 0 {
				return true
			}
		}
	}
	return false
}

// An Expected is a line of an expected-differences file: the cases whose
// name matches Pattern (a case name, or a path.Match pattern such as
// "stop/*") are expected to differ from stock, for Reason. Such a case
// that fails is reported as DIFF, not FAIL.
type Expected struct {
	Pattern string
	Reason  string
	Line    int
}

// ParseExpected parses an expected-differences file: one "PATTERN REASON"
// per line, '#' starting a comment line, blank lines ignored.
func ParseExpected(name, text string) ([]Expected, error) {
	var out []Expected
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		pat := strings.Fields(l)[0]
		reason := strings.TrimSpace(l[len(pat):])
		if reason == "" {
			return nil, fmt.Errorf("%s:%d: want: CASE-PATTERN REASON", name, i+1)
		}
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("%s:%d: bad pattern %q: %v", name, i+1, pat, err)
		}
		out = append(out, Expected{Pattern: pat, Reason: reason, Line: i + 1})
	}
	return out, nil
}

// expectedFor returns the first line of es that matches the case.
func expectedFor(es []Expected, name string) *Expected {
	for i := range es {
		if ok, _ := path.Match(es[i].Pattern, name); ok || es[i].Pattern == name {
			return &es[i]
		}
	}
	return nil
}

// ParseCommandTemplate splits a command template into words, as a POSIX
// shell would split a simple command: blanks separate words, '...'
// quotes literally, "..." quotes with \" \\ \$ and \` escapes, a backslash
// outside quotes escapes the next character. Leading NAME=VALUE words are
// environment variables. The placeholders {epmd} (the -epmd path),
// {port} (the port the daemon must listen on) and {args} (a word of its
// own: the case's flags, with "-port PORT" in front unless {port} is used
// elsewhere) are replaced when the daemon starts.
func ParseCommandTemplate(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("command template ends with a backslash")
			}
			i++
			cur.WriteByte(s[i])
			in = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in command template")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\"\\$`", s[j+1]) >= 0 {
					j++
				}
				cur.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" in command template")
			}
			i = j
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	prog := false
	for _, w := range words {
		rest := w
		for {
			i := strings.IndexByte(rest, '{')
			if i < 0 {
				break
			}
			j := strings.IndexByte(rest[i:], '}')
			if j < 0 {
				break
			}
			switch ph := rest[i : i+j+1]; ph {
			case "{epmd}", "{port}":
			case "{args}":
				if w != "{args}" {
					return nil, fmt.Errorf("{args} must be a word of its own in the command template, not part of %q", w)
				}
			default:
				return nil, fmt.Errorf("unknown placeholder %s in command template (want {epmd}, {port} or {args})", ph)
			}
			rest = rest[i+j+1:]
		}
		if !envRE.MatchString(w) {
			prog = true
		}
	}
	if !prog {
		return nil, fmt.Errorf("command template %q names no program", s)
	}
	return words, nil
}
